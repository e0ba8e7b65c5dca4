"""Per-frame layouts from keyframes: boxes and points of matching instances interpolated linearly between keyframes."""
from .errors import InstDiffError
from .layout import Instance, Layout


def _lerp(a, b, t):
    return tuple(x + (y - x) * t for x, y in zip(a, b))


def _between(a: Layout, b: Layout, t: float) -> Layout:
    """Instance i of `a` moved toward instance i of `b` (boxes and points only; other formats held from `a`)."""
    instances = []
    for i, (ia, ib) in enumerate(zip(a.instances, b.instances)):
        box = _lerp(ia.box, ib.box, t) if ia.box is not None and ib.box is not None else ia.box
        point = _lerp(ia.point, ib.point, t) if ia.point is not None and ib.point is not None else ia.point
        instances.append(Instance(caption=ia.caption, box=box, point=point, scribble=ia.scribble,
                                  polygon=ia.polygon, mask=ia.mask, color=ia.color))
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
