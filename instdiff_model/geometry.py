"""Geometry shared by layout, preprocessing, importers, interop and preview: value checks, clamp, extent, raster, resize."""
import math

import numpy as np

from .errors import InstDiffError


def short(value) -> str:
    """repr(value) cut to 60 characters, for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_int(v) -> bool:
    """A Python int that is not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    """An int/float (not a bool) that is neither NaN nor infinite (huge ints count as numbers)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def number(v, where: str) -> float:
    """An int/float (not a bool) as a finite float; anything else raises InstDiffError naming `where`."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InstDiffError(f"{where}: expected a number, got {short(v)}")
    try:
        f = float(v)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        raise InstDiffError(f"{where}: expected a finite number, got {short(v)}")
    return f


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


def instance_mask(inst, height: int, width: int):
    """The instance's mask (bool (H, W)): its mask, else its rasterised polygon, else None."""
    if inst.mask is not None:
        return inst.mask
    if inst.polygon is not None:
        return rasterize_polygon(inst.polygon, height, width)
    return None


def instance_extent(inst):
    """(x0, y0, x1, y1) pixels of an instance's box / mask / polygon / scribble; None for a point-only one."""
    if inst.box is not None:
        x, y, w, h = inst.box
        return (x, y, x + w, y + h)
    if inst.mask is not None:
        rows, cols = np.nonzero(inst.mask)
        return (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))
    for shapes in (inst.polygon, inst.scribble):
        if shapes is not None:
            pts = np.concatenate([np.asarray(s, dtype=np.float64) for s in shapes])
            return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))
    return None
