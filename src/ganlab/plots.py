"""Small pictures drawn with Pillow, so that no plotting library is needed."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]


def histogram_figure(series: dict[str, torch.Tensor], bins: int = 100,
                     size: tuple[int, int] = (640, 400), title: str = "") -> np.ndarray:
    """Step histograms of several sample sets on shared bins, as in the seed's figure (H x W x 3)."""
    width, height = size
    left, right, top, bottom = 50, 15, 30, 40
    values = [s.detach().flatten().double() for s in series.values()]
    lo = min(v.min().item() for v in values)
    hi = max(v.max().item() for v in values)
    if hi <= lo:
        hi = lo + 1.0
    counts = [torch.histc(v, bins=bins, min=lo, max=hi) / len(v) for v in values]
    peak = max(c.max().item() for c in counts) or 1.0

    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    plot_w, plot_h = width - left - right, height - top - bottom
    draw.rectangle([left, top, width - right, height - bottom], outline="black")

    def px(i: float, frac: float) -> tuple[float, float]:
        return left + plot_w * i / bins, height - bottom - plot_h * frac / peak * 0.95

    for color, c in zip(COLORS, counts):
        points = [px(0, 0)]
        for i, h in enumerate(c.tolist()):
            points += [px(i, h), px(i + 1, h)]
        points.append(px(bins, 0))
        draw.line(points, fill=color, width=2)
    for k in range(6):  # x ticks
        x = left + plot_w * k / 5
        draw.line([x, height - bottom, x, height - bottom + 4], fill="black")
        draw.text((x - 12, height - bottom + 8), f"{lo + (hi - lo) * k / 5:.2f}", fill="black")
    draw.text((left, 8), title, fill="black")
    for k, (color, name) in enumerate(zip(COLORS, series)):
        draw.line([width - 150, top + 15 + 16 * k, width - 125, top + 15 + 16 * k], fill=color, width=3)
        draw.text((width - 118, top + 9 + 16 * k), name, fill="black")
    return np.asarray(img)


def image_grid(images: torch.Tensor, nrow: int = 8, pad: int = 2) -> np.ndarray:
    """Images in [-1, 1], (N, 1, H, W) -> one grey grid picture, H x W x 3 uint8."""
    images = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    n, _, h, w = images.shape
    ncol = min(nrow, n)
    nrows = -(-n // ncol)
    grid = torch.full((nrows * (h + pad) + pad, ncol * (w + pad) + pad), 64, dtype=torch.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = images[i, 0]
    return np.repeat(grid.numpy()[:, :, None], 3, axis=2)
