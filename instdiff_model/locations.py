"""Location kinds of an instance (box, point, scribble, polygon, mask), each defined once, and the Instance record."""
# A kind is one class below: its JSON key and how a value of it is checked (normalised), written to JSON, scaled to
# another image size, where it lies (extent), which pixels it covers (raster), how it moves between keyframes, which
# official drop config keeps it and how the preview draws it. A new kind: its class, its place in KINDS and
# SHAPE_ORDER, its Instance field, and its tool in the editor (web/). It reaches the model through its extent (box
# tokens) and raster (polygon, scribble and mask tokens sampled from it, preprocess.py); the model's own inputs
# (point and scribble tokens, DROP_CONFIGS) are fixed by the official weights.
from dataclasses import dataclass, replace

import numpy as np

from .constants import DropConfig
from .errors import InstDiffError, concerning
from .geometry import clamp, rasterize_polygon, resize_nearest
from .rle import rle_decode, rle_encode
from .values import number, short


def _xy(v, where: str) -> tuple:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise InstDiffError(f"{where}: expected an [x, y] pair, got {short(v)}")
    return (number(v[0], where), number(v[1], where))


def _xy_list(v, where: str) -> list:
    if not isinstance(v, (list, tuple)) or not v:
        raise InstDiffError(f"{where}: expected a non-empty list of [x, y] points, got {short(v)}")
    return [_xy(p, f"{where}[{j}]") for j, p in enumerate(v)]


def _nested(v) -> bool:
    """True for a list of lists of points (several strokes/rings), False for a single list of points."""
    return isinstance(v, (list, tuple)) and bool(v) and isinstance(v[0], (list, tuple)) and bool(v[0]) \
        and isinstance(v[0][0], (list, tuple))


def _inside(p, where: str, w: int, h: int) -> None:
    if not (0 <= p[0] <= w and 0 <= p[1] <= h):
        raise InstDiffError(
            f"{where}: ({p[0]:g}, {p[1]:g}) lies outside the {w}x{h} image; move it inside [0, {w}] x [0, {h}]"
        )


def _clip_xy(p, sx, sy, w, h) -> tuple:
    return (clamp(p[0] * sx, float(w)), clamp(p[1] * sy, float(h)))


def _lerp(a, b, t) -> tuple:
    return tuple(x + (y - x) * t for x, y in zip(a, b))


class Kind:
    """A location kind. `check(value, who, w, h)` (who: "instance i") returns the value normalised or raises
    InstDiffError; `to_json`, `scale(value, sx, sy, w, h)` (into a w x h image) and `draw(value, paint)` (returns
    a label anchor or None; see draw_instance) are per kind. The defaults: no extent, no raster, held between
    keyframes."""

    key = ""  # the Instance field and JSON key
    drop_config: DropConfig  # the official drop config (position_net.DROP_CONFIGS) keeping this kind, dropping the most

    def extent(self, value):
        """(x0, y0, x1, y1) pixels, or None for a kind without an area."""
        return None

    def raster(self, value, height: int, width: int):
        """(H, W) bool pixels covered, or None for a kind that is not an area."""
        return None

    def between(self, a, b, t: float):
        """The value a fraction t of the way from keyframe value a to b."""
        return a


class Box(Kind):
    key, drop_config = "box", DropConfig.BOX

    def check(self, box, who, w, h):
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            raise InstDiffError(f"{who} box: expected [x, y, width, height] in pixels, got {short(box)}")
        x, y, bw, bh = (number(v, f"{who} box") for v in box)
        if bw <= 0 or bh <= 0:
            raise InstDiffError(f"{who} box: zero or negative area ({bw:g} x {bh:g}); give a positive width and height")
        if x < 0 or y < 0 or x + bw > w or y + bh > h:
            raise InstDiffError(
                f"{who} box: [{x:g}, {y:g}, {bw:g}, {bh:g}] (x, y, w, h) extends outside the {w}x{h} image; "
                f"shrink or move it so 0 <= x, 0 <= y, x+w <= {w}, y+h <= {h}"
            )
        return (x, y, bw, bh)

    def to_json(self, box):
        return list(box)

    def scale(self, box, sx, sy, w, h):
        """Corners scaled and clamped to the image; at least 1e-3 pixels wide and high."""
        x0, y0 = _clip_xy(box[:2], sx, sy, w, h)
        x1, y1 = _clip_xy((box[0] + box[2], box[1] + box[3]), sx, sy, w, h)
        return (x0, y0, max(x1 - x0, 1e-3), max(y1 - y0, 1e-3))

    def extent(self, box):
        x, y, bw, bh = box
        return (x, y, x + bw, y + bh)

    def between(self, a, b, t):
        return _lerp(a, b, t)

    def draw(self, box, paint):
        x, y, bw, bh = box
        paint.rect(x, y, x + bw, y + bh)
        return (x, y)


class Point(Kind):
    key, drop_config = "point", DropConfig.POINT

    def check(self, point, who, w, h):
        point = _xy(point, f"{who} point")
        _inside(point, f"{who} point", w, h)
        return point

    def to_json(self, point):
        return list(point)

    def scale(self, point, sx, sy, w, h):
        return _clip_xy(point, sx, sy, w, h)

    def between(self, a, b, t):
        return _lerp(a, b, t)

    def draw(self, point, paint):
        return paint.dot(*point)


class _Lines(Kind):
    """Lists of [x, y] points (scribble strokes, polygon rings); a single list is accepted as one."""

    part = ""  # what one list is called in messages
    min_points = 1

    def check(self, lines, who, w, h):
        where = f"{who} {self.key} {self.part}"
        lines = [_xy_list(s, f"{where} {j}") for j, s in enumerate(lines if _nested(lines) else [lines])]
        for j, line in enumerate(lines):
            if len(line) < self.min_points:
                raise InstDiffError(f"{where} {j}: has {len(line)} point(s), a {self.key} needs at least "
                                    f"{self.min_points}; add vertices or remove it")
            for p in line:
                _inside(p, f"{where} {j}", w, h)
        return lines

    def to_json(self, lines):
        return [[list(p) for p in line] for line in lines]

    def scale(self, lines, sx, sy, w, h):
        return [[_clip_xy(p, sx, sy, w, h) for p in line] for line in lines]

    def extent(self, lines):
        pts = np.concatenate([np.asarray(line, dtype=np.float64) for line in lines])
        return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


class Scribble(_Lines):
    key, drop_config, part = "scribble", DropConfig.SCRIBBLE, "stroke"

    def draw(self, strokes, paint):
        for stroke in strokes:
            paint.stroke(stroke)
        return tuple(strokes[0][0])


class Polygon(_Lines):
    key, drop_config, part, min_points = "polygon", DropConfig.SD15, "ring", 3

    def raster(self, rings, height, width):
        return rasterize_polygon(rings, height, width)

    def draw(self, rings, paint):
        for ring in rings:
            paint.polygon(ring)
        return tuple(rings[0][0])


class Mask(Kind):
    key, drop_config = "mask", DropConfig.SD15

    def check(self, m, who, w, h):
        if isinstance(m, dict):
            m = rle_decode(m, h, w, f"{who} mask")
        if not isinstance(m, np.ndarray) or m.dtype.kind not in "biuf":
            raise InstDiffError(f"{who} mask: expected a COCO RLE object or a 2-D bool/number array, got {short(m)}")
        if m.ndim != 2:
            raise InstDiffError(f"{who} mask: expected a 2-D array, got shape {m.shape}")
        if m.shape != (h, w):
            raise InstDiffError(
                f"{who} mask: size {m.shape[0]}x{m.shape[1]} (HxW) differs from the image {h}x{w}; "
                "resize the mask to the image size"
            )
        m = m != 0
        if not m.any():
            raise InstDiffError(f"{who} mask: empty (all zero); paint the instance or remove the mask")
        return m

    def to_json(self, m):
        return rle_encode(m)

    def scale(self, m, sx, sy, w, h):
        return resize_nearest(m, h, w)

    def extent(self, m):
        rows, cols = np.nonzero(m)
        return (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))

    def raster(self, m, height, width):
        return m

    def draw(self, m, paint):
        paint.tint(m)


BOX, POINT, SCRIBBLE, POLYGON, MASK = Box(), Point(), Scribble(), Polygon(), Mask()
KINDS = (BOX, POINT, SCRIBBLE, POLYGON, MASK)  # JSON and check order
SHAPE_ORDER = (BOX, MASK, POLYGON, SCRIBBLE, POINT)  # extent, raster and drawing order: the first kind that has one wins
KEYS = tuple(kind.key for kind in KINDS)
CHOICES = "a " + ", ".join(KEYS[:-1]) + " or " + KEYS[-1]  # "a box, point, ... or mask", for messages


@dataclass(eq=False)
class Instance:
    """One instance: caption plus a value of any of the KINDS (one field each: box [x, y, w, h], point (x, y),
    scribble strokes, polygon rings, (H, W) bool mask, all in image pixels); optional display colour "#rrggbb";
    weight: how strongly the fusers enforce it in its region (1 = the official model, see instance_weight.py)."""

    caption: str
    box: tuple | None = None
    point: tuple | None = None
    scribble: list | None = None
    polygon: list | None = None
    mask: np.ndarray | None = None
    color: str | None = None
    weight: float = 1.0

    def to_dict(self) -> dict:
        d = {"caption": self.caption}
        d.update((kind.key, kind.to_json(value)) for kind, value in locations_of(self))
        if self.color is not None:
            d["color"] = self.color
        if self.weight != 1:
            d["weight"] = self.weight
        return d


def locations_of(inst, kinds=KINDS) -> list:
    """[(kind, value), ...] of the kinds the instance has, in the order of `kinds`."""
    return [(kind, getattr(inst, kind.key)) for kind in kinds if getattr(inst, kind.key) is not None]


def check_locations(inst, who: str, width: int, height: int) -> None:
    """Check every location of `inst` (named `who` in errors) against a width x height image, normalising it in place."""
    for kind, value in locations_of(inst):
        with concerning(field=kind.key):
            setattr(inst, kind.key, kind.check(value, who, width, height))


def scale_instance(inst, sw: int, sh: int, w: int, h: int):
    """A copy of `inst` (drawn on a sw x sh image) scaled to a w x h image, kept inside it."""
    if (sw, sh) == (w, h):
        return replace(inst)
    return replace(inst, **{kind.key: kind.scale(value, w / sw, h / sh, w, h) for kind, value in locations_of(inst)})


def instance_extent(inst):
    """(x0, y0, x1, y1) pixels of an instance's box / mask / polygon / scribble; None for a point-only one."""
    return next((e for kind, v in locations_of(inst, SHAPE_ORDER) if (e := kind.extent(v)) is not None), None)


def instance_mask(inst, height: int, width: int):
    """The instance's mask (bool (H, W)): its mask, else its rasterised polygon, else None."""
    return next((m for kind, v in locations_of(inst, SHAPE_ORDER) if (m := kind.raster(v, height, width)) is not None),
                None)


def draw_instance(inst, paint) -> tuple:
    """Draw the instance's locations with `paint`, in SHAPE_ORDER; returns where its label goes: the anchor of the
    first kind that gives one (box corner, first polygon / scribble vertex, beside the point), else the top-left
    pixel of its extent (a mask).

    The painter (nodes/preview.py draws with PIL) has tint(mask): mask pixels filled translucent; polygon(ring):
    filled translucent and outlined; rect(x0, y0, x1, y1): outlined; stroke(points): a thick freehand line;
    dot(x, y): a marker, returning the point beside it for a label."""
    anchors = [kind.draw(value, paint) for kind, value in locations_of(inst, SHAPE_ORDER)]
    anchor = next((a for a in anchors if a is not None), None)
    if anchor is None:
        x0, y0 = instance_extent(inst)[:2]
        anchor = (int(x0), int(y0))
    return anchor
