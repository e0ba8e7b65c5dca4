"""Official InstanceDiffusion input preprocessing (mask -> polygon / scribble points, boxes, points), from scratch."""
import random
from collections import deque

import numpy as np
import torch

from .constants import N_POLYGON_POINTS, N_SCRIBBLE_POINTS, N_SLOTS, SEG_SIZE, TEXT_DIM
from .errors import InstDiffError
from .geometry import resize_nearest
from .locations import instance_extent, instance_mask


# marching-squares segments per square case (bit 1 ul, 2 ur, 4 ll, 8 lr above level), low values
# fully connected, lower values on the left of each segment: lists of (from, to) edge names
_SEGMENTS = {
    1: [("top", "left")], 2: [("right", "top")], 3: [("right", "left")], 4: [("left", "bottom")],
    5: [("top", "bottom")], 6: [("right", "top"), ("left", "bottom")], 7: [("right", "bottom")],
    8: [("bottom", "right")], 9: [("top", "left"), ("bottom", "right")], 10: [("bottom", "top")],
    11: [("bottom", "left")], 12: [("left", "right")], 13: [("top", "right")], 14: [("left", "top")],
}


def _contour_segments(img: np.ndarray) -> list:
    """Marching-squares segments at iso-level 0 of a {0,1} image, squares visited in row-major order.

    Along an edge from value a to b the crossing sits at fraction (0 - a) / (b - a) (0 when a == b), i.e.
    on the zero-valued pixel: all coordinates are integers.
    """
    hi = img > 0
    ul, ur, ll, lr = hi[:-1, :-1], hi[:-1, 1:], hi[1:, :-1], hi[1:, 1:]
    case = ul * 1 + ur * 2 + ll * 4 + lr * 8
    rows, cols = np.nonzero((case != 0) & (case != 15))
    segments = []
    for r0, c0 in zip(rows.tolist(), cols.tolist()):
        a, b, c, d = bool(ul[r0, c0]), bool(ur[r0, c0]), bool(ll[r0, c0]), bool(lr[r0, c0])
        edge = {
            "top": (r0, c0 + int(a and not b)),
            "bottom": (r0 + 1, c0 + int(c and not d)),
            "left": (r0 + int(a and not c), c0),
            "right": (r0 + int(b and not d), c0 + 1),
        }
        for frm, to in _SEGMENTS[int(case[r0, c0])]:
            segments.append((edge[frm], edge[to]))
    return segments


def _assemble(segments: list) -> list:
    """Chain segments into contours, keeping the order of each contour's first segment (as skimage does)."""
    contours, starts, ends = {}, {}, {}
    count = 0
    for frm, to in segments:
        if frm == to:
            continue
        tail, tail_num = starts.pop(to, (None, None))
        head, head_num = ends.pop(frm, (None, None))
        if tail is not None and head is not None:
            if tail is head:
                head.append(to)
            elif tail_num > head_num:
                head.extend(tail)
                ends.pop(tail[-1])
                contours.pop(tail_num, None)
                starts[head[0]] = (head, head_num)
                ends[head[-1]] = (head, head_num)
            else:
                tail.extendleft(reversed(head))
                starts.pop(head[0])
                contours.pop(head_num, None)
                starts[tail[0]] = (tail, tail_num)
                ends[tail[-1]] = (tail, tail_num)
        elif tail is None and head is None:
            new = deque((frm, to))
            contours[count] = new
            starts[frm] = (new, count)
            ends[to] = (new, count)
            count += 1
        elif head is None:
            tail.appendleft(frm)
            starts[frm] = (tail, tail_num)
        else:
            head.append(to)
            ends[to] = (head, head_num)
    return [np.array(c, dtype=np.float64) for _, c in sorted(contours.items())]


def find_contours_level0(mask: np.ndarray) -> list:
    """Contours (n,2) (row, col) of skimage.measure.find_contours(mask, 0) for a binary mask."""
    return _assemble(_contour_segments(np.asarray(mask) != 0))


def binary_mask_to_polygon(mask: np.ndarray) -> list:
    """Official binary_mask_to_polygon(mask, tolerance=0): flat [x0, y0, x1, y1, ...] per contour.

    Contours at level 0 of the 1-px zero-padded mask, closed, approximate_polygon(tolerance 0) = unchanged,
    < 3 points dropped, (row, col) -> (x, y), the padding offset NOT removed, negatives set to 0.
    """
    padded = np.pad(np.asarray(mask) != 0, 1)
    polygons = []
    for contour in find_contours_level0(padded):
        if not np.array_equal(contour[0], contour[-1]):
            contour = np.vstack((contour, contour[0]))
        if len(contour) < 3:
            continue
        polygons.append(np.maximum(contour[:, ::-1].ravel(), 0.0))
    return polygons


def boundary_points(mask: np.ndarray) -> np.ndarray:
    """All polygon contours of `mask` concatenated, as (P, 2) float (x, y)."""
    polygons = binary_mask_to_polygon(mask)
    if not polygons:
        return np.zeros((0, 2))
    return np.concatenate(polygons).reshape(-1, 2)


def _sort_by_norm(points: np.ndarray, center) -> np.ndarray:
    """Stable sort of (n, 2) points by Euclidean distance to `center`."""
    diff = points.astype(np.float64) - np.asarray(center, dtype=np.float64)
    dist = np.sqrt(diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1])
    return points[np.argsort(dist, kind="stable")]


def inside_points(mask: np.ndarray, k: int, rng: random.Random) -> np.ndarray:
    """Official sample_uniform_sparse_points: (k, 2) (x, y) interior points of pixels == 1.

    >= k pixels: row-major foreground pixels stably sorted by distance to their centroid, element
    i*L + L//2 with L = count // k. Fewer: k `rng.choice` draws (the official code uses the global
    `random`; random.Random(s) reproduces `random.seed(s)`). No pixel: empty (0, 2).
    """
    fg = np.argwhere(np.asarray(mask) == 1)
    if len(fg) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if len(fg) < k:
        picked = [fg[rng.choice(range(len(fg)))] for _ in range(k)]
        return np.array(picked)[:, ::-1]
    ordered = _sort_by_norm(fg, fg.mean(axis=0))
    step = len(fg) // k
    return ordered[np.arange(k) * step + step // 2][:, ::-1]


def polygon_points(mask: np.ndarray, rng: random.Random, k: int = N_POLYGON_POINTS):
    """Official sample_sparse_points_from_mask(mask, k): k//2 boundary + k - k//2 interior points, flat
    [x, y, ...] in pixels of the padded frame, stably sorted by distance to (0, 0); None if no contour."""
    boundary = boundary_points(mask)
    if len(boundary) == 0:
        return None
    idx = [int(i) for i in np.linspace(0, len(boundary) - 1, k // 2)]
    sampled = boundary[idx]
    inner = inside_points(mask, k - len(sampled), rng).astype(np.float64)
    points = np.concatenate([inner, sampled]) if len(inner) else sampled
    return _sort_by_norm(points, (0, 0)).ravel()


def scribble_points(mask: np.ndarray, rng: np.random.RandomState, k: int = N_SCRIBBLE_POINTS) -> np.ndarray:
    """Official sample_random_points_from_mask(mask, k): flat [x, y, ...].

    k non-zero pixels drawn by legacy `rng.choice` (the official code uses the global np.random;
    RandomState(s) reproduces `np.random.seed(s)`; with replacement only if fewer than k pixels),
    stably sorted by distance of (row, col) to (0, 0); all zeros for an empty mask.
    """
    fg = np.argwhere(np.asarray(mask) != 0)
    if len(fg) == 0:
        return np.zeros(2 * k)
    picked = fg[rng.choice(len(fg), k, replace=len(fg) < k)]
    return _sort_by_norm(picked, (0, 0))[:, ::-1].astype(np.float64).ravel()


def normalise_points(flat, width: float, height: float) -> np.ndarray:
    """Official convert_points: x / width, y / height, each capped at 1.0 (flat [x, y, ...])."""
    out = np.array(flat, dtype=np.float64)
    out[0::2] = np.minimum(out[0::2] / width, 1.0)
    out[1::2] = np.minimum(out[1::2] / height, 1.0)
    return out


def reorder_scribble(points, n: int = N_SCRIBBLE_POINTS) -> np.ndarray:
    """Official reorder_scribbles for one instance: (m, 2) normalised points -> (n, 2).

    Sort by distance to (0, 0); take every (m // n)-th point if m >= n, else index (i * m) // n; sort again.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = _sort_by_norm(pts, (0, 0))
    m = len(pts)
    idx = [i * (m // n) for i in range(n)] if n <= m else [(i * m) // n % m for i in range(n)]
    return _sort_by_norm(pts[idx], (0, 0))


def point_from_box(box_xyxy) -> list:
    """Official get_point_from_box: centre of a normalised x0, y0, x1, y1 box."""
    return [(box_xyxy[0] + box_xyxy[2]) / 2.0, (box_xyxy[1] + box_xyxy[3]) / 2.0]


def _box_xyxy(inst, width: int, height: int) -> list:
    """Normalised box: the given box, else the extent of the mask / polygon / scribble, else zeros
    (a point-only instance, as in the official inference.py)."""
    ext = instance_extent(inst)
    if ext is None:
        return [0.0, 0.0, 0.0, 0.0]
    return [ext[0] / width, ext[1] / height, ext[2] / width, ext[3] / height]


def null_grounding_inputs(batch: int = 1) -> dict:
    """All-zero grounding inputs (the official get_null_input, used for the unconditional CFG pass)."""
    n = N_SLOTS
    return {
        "boxes": torch.zeros(batch, n, 4),
        "masks": torch.zeros(batch, n),
        "positive_embeddings": torch.zeros(batch, n, TEXT_DIM),
        "scribbles": torch.zeros(batch, n, 2 * N_SCRIBBLE_POINTS),
        "polygons": torch.zeros(batch, n, 2 * N_POLYGON_POINTS),
        "segs": torch.zeros(batch, n, SEG_SIZE, SEG_SIZE),
        "points": torch.zeros(batch, n, 2),
    }


def layout_to_grounding_inputs(layout, phrase_embeddings: torch.Tensor, seed: int = 0, masks=None) -> dict:
    """Layout + (n, 768) phrase embeddings -> official-name float32 tensors with batch 1 (see tokenizer).

    Per slot i (layout order; zeros after the last instance), following the official inference.py but
    keeping masks (which inference.py discards by a bug):
      boxes      the box (official rescale_box) / mask, polygon or scribble extent / zeros for point-only instances
      points     given point / (W, H), else the box centre
      scribbles  user strokes (concatenated) / (W, H) through reorder_scribbles; else 20 points sampled from
                 the mask (legacy np RandomState(seed), one stream over the slots); else zeros
      polygons   sample_sparse_points_from_mask on the mask at image size (Python random.Random(seed) for
                 masks under 128 pixels) / (W, H), capped at 1; else zeros
      segs       the mask nearest-resized to 512x512 (PIL NEAREST rule, see resize_nearest); else zeros
    The mask is the instance mask, or its polygon rasterised (rasterize_polygon); `masks` gives them per instance
    when the caller has already rasterised the frame. No global RNG is used.
    """
    n = len(layout.instances)
    emb = torch.as_tensor(phrase_embeddings)
    if emb.ndim != 2 or emb.shape[0] != n or emb.shape[1] != TEXT_DIM:
        raise InstDiffError(
            f"phrase_embeddings must have shape ({n}, {TEXT_DIM}) (one CLIP-L pooled text feature per instance), "
            f"got {tuple(emb.shape)}"
        )
    w, h = layout.width, layout.height
    out = null_grounding_inputs(1)
    np_rng, py_rng = np.random.RandomState(seed), random.Random(seed)
    for i, inst in enumerate(layout.instances):
        mask = instance_mask(inst, h, w) if masks is None else masks[i]
        box = _box_xyxy(inst, w, h)
        out["masks"][0, i] = 1.0
        out["positive_embeddings"][0, i] = emb[i].float()
        out["boxes"][0, i] = torch.tensor(box)
        point = [inst.point[0] / w, inst.point[1] / h] if inst.point is not None else point_from_box(box)
        out["points"][0, i] = torch.tensor(point)
        if inst.scribble is not None:
            user = np.concatenate([np.asarray(s, dtype=np.float64) for s in inst.scribble]) / [w, h]
            out["scribbles"][0, i] = torch.from_numpy(reorder_scribble(user).ravel())
        elif mask is not None:
            out["scribbles"][0, i] = torch.from_numpy(normalise_points(scribble_points(mask, np_rng), w, h))
        if mask is not None and mask.any():
            poly = polygon_points(mask.astype(np.uint8), py_rng)
            if poly is not None:
                out["polygons"][0, i] = torch.from_numpy(normalise_points(poly, w, h))
            out["segs"][0, i] = torch.from_numpy(resize_nearest(mask, SEG_SIZE).astype(np.float32))
    return out
