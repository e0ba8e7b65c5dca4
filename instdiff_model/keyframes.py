"""Per-frame layouts from keyframes: boxes, points and weights of matching instances interpolated linearly between keyframes."""
from dataclasses import replace

from .errors import InstDiffError
from .layout import Layout, location_cost
from .locations import locations_of
from .values import check_cost, is_int


def _between(a: Layout, b: Layout, t: float) -> Layout:
    """Instance i of `a` moved toward instance i of `b` by each location kind's `between` (boxes and points
    interpolate; other kinds, and kinds that only `a` has, are held from `a`); its weight interpolates too."""
    instances = [replace(ia, weight=ia.weight + (ib.weight - ia.weight) * t,
                         **{kind.key: kind.between(va, getattr(ib, kind.key), t)
                            for kind, va in locations_of(ia) if getattr(ib, kind.key) is not None})
                 for ia, ib in zip(a.instances, b.instances)]
    return Layout(width=a.width, height=a.height, caption=a.caption, instances=instances)


def interpolate_keyframes(keyframes: list, frames: int) -> list:
    """[(frame, Layout), ...] -> `frames` layouts; held before the first and after the last keyframe."""
    if frames < 1:
        raise InstDiffError(f"frames must be at least 1, got {frames}")
    if not keyframes:
        raise InstDiffError("give at least one keyframe")
    keyframes = sorted(keyframes, key=lambda kf: kf[0])
    frame_ids = [f for f, _ in keyframes]
    if len(set(frame_ids)) != len(frame_ids):
        raise InstDiffError(f"keyframe frame numbers must be distinct, got {frame_ids}")
    first = keyframes[0][1]
    for f, layout in keyframes[1:]:
        if (layout.width, layout.height) != (first.width, first.height):
            raise InstDiffError(f"keyframe {f}: size {layout.width}x{layout.height} differs from {first.width}x{first.height}")
        if [i.caption for i in layout.instances] != [i.caption for i in first.instances]:
            raise InstDiffError(
                f"keyframe {f}: instances must match keyframe {keyframes[0][0]} one for one (same captions in the same order)")
    out = []
    for n in range(frames):
        if n <= frame_ids[0]:
            out.append(keyframes[0][1])
        elif n >= frame_ids[-1]:
            out.append(keyframes[-1][1])
        else:
            k = max(j for j, f in enumerate(frame_ids) if f <= n)
            (f0, a), (f1, b) = keyframes[k], keyframes[k + 1]
            out.append(_between(a, b, (n - f0) / (f1 - f0)))
    return out


def check_keyframes_cost(keyframes: list, frames: int) -> None:
    """[(frame, raw layout JSON dict), ...]: refuse before decoding when the points of all keyframes, or the mask
    pixels of the keyframes plus the `frames` layouts interpolated from them, exceed the budget (limits.py)."""
    points = pixels = most = 0
    for _, raw in keyframes:
        instances = raw.get("instances") if isinstance(raw, dict) else None
        if not isinstance(instances, list) or not (is_int(raw.get("width")) and is_int(raw.get("height"))):
            continue  # Layout.from_json names the problem
        p, masks = location_cost([i for i in instances if isinstance(i, dict)])
        area = masks * max(raw["width"], 0) * max(raw["height"], 0)
        points, pixels, most = points + p, pixels + area, max(most, area)
    ids = {f for f, _ in keyframes}
    between = sum(1 for n in range(frames) if min(ids, default=0) < n < max(ids, default=0) and n not in ids)
    check_cost(points, pixels + between * most, f"{len(keyframes)} keyframes over {frames} frames")
