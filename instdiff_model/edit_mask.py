"""Layout difference: which instances an edit adds, removes, moves, resizes, re-captions or re-weights, and its mask."""
# Matching rule (before -> after): instances with the same caption are paired first, the k-th occurrence of a
# caption in `before` with its k-th occurrence in `after` (so deleting or adding one instance does not shift the
# others); the instances left over are then paired in their order (a re-captioned instance keeps its place in the
# list); whatever is still left over was removed (before) or added (after).
# An instance's region is the union of its locations: box, mask, polygon, the extent of its scribble, and for a
# point a square of POINT_SIDE of the layout's shorter side around it. Colours and the order of the list do not count.
import numpy as np
import torch
import torch.nn.functional as F

from .errors import InstDiffError
from .locations import Point, locations_of

POINT_SIDE = 1 / 8


def weight_of(inst) -> float:
    return float(getattr(inst, "weight", 1.0))


def match_instances(before: list, after: list) -> tuple:
    """([(i, j), ...] pairs of before/after indices, [removed i], [added j]) by the rule above."""
    pairs, free_after = [], list(range(len(after)))
    free_before = []
    for i, inst in enumerate(before):
        j = next((j for j in free_after if after[j].caption == inst.caption), None)
        if j is None:
            free_before.append(i)
        else:
            pairs.append((i, j))
            free_after.remove(j)
    pairs += list(zip(free_before, free_after))
    n = min(len(free_before), len(free_after))
    return sorted(pairs), free_before[n:], free_after[n:]


def _locations(inst) -> dict:
    return {kind.key: kind.to_json(value) for kind, value in locations_of(inst)}


def changes(a, b) -> list:
    """What differs between instance `a` (before) and `b` (after): a list of words, empty when nothing did."""
    out = []
    if a.caption != b.caption:
        out.append(f"re-captioned {a.caption!r} -> {b.caption!r}")
    if _locations(a) != _locations(b):
        out.append("moved/resized/reshaped")
    if weight_of(a) != weight_of(b):
        out.append(f"re-weighted {weight_of(a):g} -> {weight_of(b):g}")
    return out


def instance_region(inst, height: int, width: int) -> np.ndarray:
    """(H, W) bool pixels of the instance's region (see the module comment)."""
    region = np.zeros((height, width), dtype=bool)
    for kind, value in locations_of(inst):
        pixels = kind.raster(value, height, width)
        if pixels is not None:
            region |= pixels
            continue
        if isinstance(kind, Point):
            half = max(1.0, min(height, width) * POINT_SIDE / 2)
            extent = (value[0] - half, value[1] - half, value[0] + half, value[1] + half)
        else:
            extent = kind.extent(value)
        x0, y0, x1, y1 = extent
        top, left = max(0, int(np.floor(y0))), max(0, int(np.floor(x0)))
        region[top:max(0, int(np.ceil(y1))), left:max(0, int(np.ceil(x1)))] = True
    return region


def check_same_size(before, after) -> None:
    """Refuse layouts whose sizes differ, naming the fix."""
    if (before.width, before.height) == (after.width, after.height):
        return
    what = "size" if before.width * after.height == after.width * before.height else "size and aspect ratio"
    raise InstDiffError(
        f"Layout Difference: 'before' is {before.width}x{before.height} but 'after' is {after.width}x{after.height} "
        f"(different {what}); an edit keeps the image, so give the second layout the first one's width and height "
        "(connect 'before' to the second Layout node's seed_layout and set the same width/height)")


def grow_mask(mask: torch.Tensor, grow: int) -> torch.Tensor:
    """(H, W) 0/1 mask dilated by `grow` pixels (a square neighbourhood)."""
    if grow <= 0:
        return mask
    return F.max_pool2d(mask[None, None], 2 * grow + 1, stride=1, padding=grow)[0, 0]


def feather_mask(mask: torch.Tensor, feather: int) -> torch.Tensor:
    """(H, W) mask that stays 1 where `mask` is 1 and falls linearly to 0 over `feather` pixels outside it."""
    out, ring = mask.clone(), mask[None, None]
    for k in range(1, feather + 1):
        ring = F.max_pool2d(ring, 3, stride=1, padding=1)
        out = torch.maximum(out, ring[0, 0] * (1 - k / (feather + 1)))
    return out


def layout_difference(before, after, grow: int = 0, feather: int = 0) -> tuple:
    """(mask (H, W) float32 in [0, 1], notes list of lines) of the edit from Layout `before` to Layout `after`."""
    check_same_size(before, after)
    h, w = before.height, before.width
    pairs, removed, added = match_instances(before.instances, after.instances)
    region, notes = np.zeros((h, w), dtype=bool), []
    for i, j in pairs:
        what = changes(before.instances[i], after.instances[j])
        if what:
            notes.append(f"instance {i} -> {j} ({after.instances[j].caption!r}): " + ", ".join(what))
            region |= instance_region(before.instances[i], h, w) | instance_region(after.instances[j], h, w)
    for i in removed:
        notes.append(f"removed instance {i} ({before.instances[i].caption!r})")
        region |= instance_region(before.instances[i], h, w)
    for j in added:
        notes.append(f"added instance {j} ({after.instances[j].caption!r})")
        region |= instance_region(after.instances[j], h, w)
    if before.caption != after.caption:
        notes.append(f"the layout caption changed ({before.caption!r} -> {after.caption!r}): a new prompt touches the "
                     "whole picture, the mask covers only the instances' edits")
    mask = feather_mask(grow_mask(torch.from_numpy(region).float(), grow), feather)
    if not region.any():
        notes.append("no instance changed: the mask is empty, so a masked re-run keeps the first image")
    else:
        notes.append(f"the mask covers {float(mask.gt(0).float().mean()) * 100:.1f}% of the {w}x{h} image "
                     f"(grow {grow}px, feather {feather}px)")
    return mask, notes
