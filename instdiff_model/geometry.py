"""Geometry shared by location kinds, preprocessing, importers and interop: clamp, polygon raster, mask resize."""
import numpy as np


def clamp(v, hi):
    """v limited to [0, hi] (0.0 below, hi above)."""
    return min(max(v, 0.0), hi)


def resize_nearest(mask: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D mask to (height, width) (width defaults to height), sampling pixel
    centres as PIL Image.NEAREST does: source index floor((i + 0.5) * in / out)."""
    mask = np.asarray(mask)
    width = height if width is None else width
    h, w = mask.shape
    if (h, w) == (height, width):
        return mask
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return mask[rows[:, None], cols[None, :]]


def rasterize_polygon(rings, height: int, width: int) -> np.ndarray:
    """(H, W) bool union of the rings, each filled even-odd at pixel centres (x + 0.5, y + 0.5).

    Stand-in for pycocotools' polygon rasteriser (COCO merges rings by union); not bit-identical to it.
    """
    out = np.zeros((height, width), dtype=bool)
    ys = np.arange(height) + 0.5
    xs = np.arange(width) + 0.5
    for ring in rings:
        pts = np.asarray(ring, dtype=np.float64)
        x0, y0 = pts[:, 0], pts[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        inside = np.zeros((height, width), dtype=bool)
        for ax, ay, bx, by in zip(x0, y0, x1, y1):
            if ay == by:
                continue
            rows = (ys >= min(ay, by)) & (ys < max(ay, by))
            cross = ax + (ys[rows] - ay) * (bx - ax) / (by - ay)
            inside[rows] ^= xs[None, :] < cross[:, None]
        out |= inside
    return out

