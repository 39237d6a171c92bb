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


MARGINS = 50, 15, 30, 40  # left, right, top, bottom: room for the ticks' labels and the title


def _canvas(size: tuple[int, int]):
    """A white picture with the plot's frame, and its drawing context."""
    width, height = size
    left, right, top, bottom = MARGINS
    img = Image.new("P", size, WHITE)
    img.putpalette(PALETTE)
    draw = ImageDraw.Draw(img)
    draw.rectangle([left, top, width - right, height - bottom], outline=BLACK)
    return img, draw


def drawable(text: str) -> str:
    """`text` with `?` for what the bitmap font has no glyph for (it knows Latin-1 only, and
    Pillow raised UnicodeEncodeError on the rest: a run directory named in Japanese, say)."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _labels(draw: ImageDraw.ImageDraw, size: tuple[int, int], lo: float, hi: float, title: str,
            names: list[str]) -> None:
    """x ticks from lo to hi, the title and a legend (the series' colours are palette indices 2,
    3, ...), drawn over the curves."""
    title, names = drawable(title), [drawable(name) for name in names]
    width, height = size
    left, right, top, bottom = MARGINS
    plot_w = width - left - right
    for k in range(6):  # x ticks
        x = left + plot_w * k / 5
        draw.line([x, height - bottom, x, height - bottom + 4], fill=BLACK)
        draw.text((x - 12, height - bottom + 8), f"{lo + (hi - lo) * k / 5:.2f}", fill=BLACK, font=FONT)
    draw.text((left, 8), title, fill=BLACK, font=FONT)
    legend = min(width - 150, width - right - 41 - max(draw.textlength(name, font=FONT) for name in names))
    for k, name in enumerate(names):
        draw.line([legend, top + 15 + 16 * k, legend + 25, top + 15 + 16 * k], fill=2 + k, width=3)
        draw.text((legend + 32, top + 9 + 16 * k), name, fill=BLACK, font=FONT)


def histogram_figure(series: dict[str, torch.Tensor], bins: int = 100,
                     size: tuple[int, int] = (640, 400), title: str = "") -> Image.Image:
    """Step histograms of several sample sets on shared bins, as in the seed's figure."""
    width, height = size
    left, right, top, bottom = MARGINS
    values = [s.detach().cpu().numpy().ravel() for s in series.values()]
    lo = float(min(v.min() for v in values))
    hi = float(max(v.max() for v in values))
    if hi <= lo:
        hi = lo + 1.0
    # each series' fraction in `bins` equal bins over [lo, hi], hi itself in the last (as torch.histc)
    counts = [np.bincount(np.minimum(((v.astype(np.float64) - lo) * (bins / (hi - lo))).astype(np.int64),
                                     bins - 1), minlength=bins) / len(v) for v in values]
    peak = max(c.max() for c in counts) or 1.0

    img, draw = _canvas(size)
    plot_w, plot_h = width - left - right, height - top - bottom
    edges = left + plot_w * np.arange(bins + 1) / bins
    for color, c in enumerate(counts, start=2):
        # the outline: up from the axis, across each bin at its height, down to the axis
        xy = np.empty((2 * bins + 2, 2))
        xy[0], xy[-1] = (edges[0], height - bottom), (edges[-1], height - bottom)
        xy[1:-1, 0] = np.repeat(edges, 2)[1:-1]
        xy[1:-1, 1] = np.repeat(height - bottom - plot_h * 0.95 * c / peak, 2)
        draw.line(xy.ravel().tolist(), fill=color, width=2)  # numpy builds the points: 2x faster
    _labels(draw, size, lo, hi, title, list(series))
    return img


def line_figure(series: dict[str, tuple[np.ndarray, np.ndarray]], size: tuple[int, int] = (640, 400),
                title: str = "") -> Image.Image:
    """Curves y(x) on shared axes, with the y range ticked on the left."""
    width, height = size
    left, right, top, bottom = MARGINS
    xs = np.concatenate([np.asarray(x, dtype=np.float64) for x, _ in series.values()])
    ys = np.concatenate([np.asarray(y, dtype=np.float64) for _, y in series.values()])
    x_lo, x_hi, y_lo, y_hi = xs.min(), xs.max(), ys.min(), ys.max()
    x_hi, y_hi = max(x_hi, x_lo + 1e-9), max(y_hi, y_lo + 1e-9)
    img, draw = _canvas(size)
    plot_w, plot_h = width - left - right, height - top - bottom
    for k in range(5):  # y ticks, 5% in from the frame as the curves
        y = height - bottom - plot_h * (0.05 + 0.9 * k / 4)
        draw.line([left - 4, y, left, y], fill=BLACK)
        draw.text((2, y - 5), f"{y_lo + (y_hi - y_lo) * k / 4:.2f}", fill=BLACK, font=FONT)
    for color, (x, y) in enumerate(series.values(), start=2):
        px = left + plot_w * (np.asarray(x, dtype=np.float64) - x_lo) / (x_hi - x_lo)
        py = height - bottom - plot_h * (0.05 + 0.9 * (np.asarray(y, dtype=np.float64) - y_lo) / (y_hi - y_lo))
        draw.line(np.stack([px, py], 1).ravel().tolist(), fill=color, width=2)
    _labels(draw, size, x_lo, x_hi, title, list(series))
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
