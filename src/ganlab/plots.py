"""Small pictures drawn with Pillow, so that no plotting library is needed.

Pictures are palette or grey images, not RGB: a third of the bytes to draw and to PNG-encode
(1.2 ms instead of 6 ms for a histogram figure), which matters when 32 copies of a population
each log one at every evaluation."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

WHITE, BLACK = 0, 1
COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]
# Pillow's small bitmap font: a tenth of the time of its default TrueType font for each label
FONT = getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)()
PALETTE = [255, 255, 255, 0, 0, 0, *(v for rgb in COLORS for v in rgb)]  # indices: white, black, COLORS


def histogram_figure(series: dict[str, torch.Tensor], bins: int = 100,
                     size: tuple[int, int] = (640, 400), title: str = "") -> Image.Image:
    """Step histograms of several sample sets on shared bins, as in the seed's figure."""
    width, height = size
    left, right, top, bottom = 50, 15, 30, 40
    values = [s.detach().cpu().numpy().ravel() for s in series.values()]
    lo = float(min(v.min() for v in values))
    hi = float(max(v.max() for v in values))
    if hi <= lo:
        hi = lo + 1.0
    # each series' fraction in `bins` equal bins over [lo, hi], hi itself in the last (as torch.histc)
    counts = [np.bincount(np.minimum(((v.astype(np.float64) - lo) * (bins / (hi - lo))).astype(np.int64),
                                     bins - 1), minlength=bins) / len(v) for v in values]
    peak = max(c.max() for c in counts) or 1.0

    img = Image.new("P", size, WHITE)
    img.putpalette(PALETTE)
    draw = ImageDraw.Draw(img)
    plot_w, plot_h = width - left - right, height - top - bottom
    draw.rectangle([left, top, width - right, height - bottom], outline=BLACK)
    edges = left + plot_w * np.arange(bins + 1) / bins
    for color, c in enumerate(counts, start=2):
        # the outline: up from the axis, across each bin at its height, down to the axis
        xy = np.empty((2 * bins + 2, 2))
        xy[0], xy[-1] = (edges[0], height - bottom), (edges[-1], height - bottom)
        xy[1:-1, 0] = np.repeat(edges, 2)[1:-1]
        xy[1:-1, 1] = np.repeat(height - bottom - plot_h * 0.95 * c / peak, 2)
        draw.line(xy.ravel().tolist(), fill=color, width=2)  # numpy builds the points: 2x faster
    for k in range(6):  # x ticks
        x = left + plot_w * k / 5
        draw.line([x, height - bottom, x, height - bottom + 4], fill=BLACK)
        draw.text((x - 12, height - bottom + 8), f"{lo + (hi - lo) * k / 5:.2f}", fill=BLACK, font=FONT)
    draw.text((left, 8), title, fill=BLACK, font=FONT)
    for k, name in enumerate(series):  # legend: the line colours are palette indices 2, 3, ...
        draw.line([width - 150, top + 15 + 16 * k, width - 125, top + 15 + 16 * k], fill=2 + k, width=3)
        draw.text((width - 118, top + 9 + 16 * k), name, fill=BLACK, font=FONT)
    return img


def image_grid(images: torch.Tensor, nrow: int = 8, pad: int = 2) -> Image.Image:
    """Images in [-1, 1], (N, 1, H, W) -> one grey grid picture."""
    images = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    n, _, h, w = images.shape
    ncol = min(nrow, n)
    nrows = -(-n // ncol)
    grid = torch.full((nrows * (h + pad) + pad, ncol * (w + pad) + pad), 64, dtype=torch.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = images[i, 0]
    return Image.fromarray(grid.numpy())  # 2-D uint8: a grey ("L") image
