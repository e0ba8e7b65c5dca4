"""Instance layout: image size, global caption and up to 30 captioned instances, with a versioned JSON schema.

JSON (schema "instdiff.layout", version 1), all coordinates in pixels of the width x height image:
    {"schema": "instdiff.layout", "version": 1, "width": W, "height": H, "caption": "global prompt",
     "instances": [{"caption": "...", "box": [x, y, w, h], "point": [x, y],
                    "scribble": [[[x, y], ...], ...],          # strokes; a single stroke [[x, y], ...] is accepted
                    "polygon": [[[x, y], ...], ...],           # rings (>= 3 vertices); a single ring is accepted
                    "mask": {"size": [H, W], "counts": "..."}, # COCO RLE, compressed string or list of run lengths
                    "color": "#rrggbb"}]}
Every instance needs a caption and at least one of box / point / scribble / polygon / mask.
Out-of-image policy: anything outside [0, W] x [0, H] (or a mask of another size) is refused with an
InstDiffError naming the instance index, the field and the fix; nothing is clipped silently.
"""
import json
import re
from dataclasses import dataclass, field

import numpy as np

from .constants import MAX_INSTANCES
from .errors import InstDiffError
from .geometry import clamp, is_int, number, resize_nearest, short
from .rle import rle_decode, rle_encode

SCHEMA = "instdiff.layout"
VERSION = 1
MAX_SIDE = 8192
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_INSTANCE_KEYS = {"caption", "box", "point", "scribble", "polygon", "mask", "color"}
_LAYOUT_KEYS = {"schema", "version", "width", "height", "caption", "instances"}


def decode_json(data, what: str):
    """A JSON string/bytes decoded (anything else returned as is); bad JSON raises InstDiffError naming `what`."""
    if isinstance(data, (str, bytes)):
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise InstDiffError(f"{what} is not valid JSON: {exc}") from None
    return data


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


@dataclass(eq=False)
class Instance:
    """One instance: caption plus any of box [x, y, w, h], point (x, y), scribble strokes, polygon rings,
    (H, W) bool mask, all in image pixels; optional display colour "#rrggbb"."""

    caption: str
    box: tuple | None = None
    point: tuple | None = None
    scribble: list | None = None
    polygon: list | None = None
    mask: np.ndarray | None = None
    color: str | None = None

    def to_dict(self) -> dict:
        d = {"caption": self.caption}
        if self.box is not None:
            d["box"] = list(self.box)
        if self.point is not None:
            d["point"] = list(self.point)
        if self.scribble is not None:
            d["scribble"] = [[list(p) for p in s] for s in self.scribble]
        if self.polygon is not None:
            d["polygon"] = [[list(p) for p in r] for r in self.polygon]
        if self.mask is not None:
            d["mask"] = rle_encode(self.mask)
        if self.color is not None:
            d["color"] = self.color
        return d


@dataclass(eq=False)
class Layout:
    """Validated layout (validation and type normalisation run on construction; raises InstDiffError)."""

    width: int
    height: int
    caption: str = ""
    instances: list = field(default_factory=list)

    def __post_init__(self):
        if not (is_int(self.width) and is_int(self.height) and 0 < self.width <= MAX_SIDE and 0 < self.height <= MAX_SIDE):
            raise InstDiffError(
                f"layout width/height must be integers in 1..{MAX_SIDE}, got {short(self.width)} x {short(self.height)}"
            )
        if not isinstance(self.caption, str):
            raise InstDiffError(f"layout caption must be a string, got {short(self.caption)}")
        if not isinstance(self.instances, (list, tuple)):
            raise InstDiffError("layout instances must be a list")
        self.instances = list(self.instances)
        if len(self.instances) > MAX_INSTANCES:
            extra = len(self.instances) - MAX_INSTANCES
            raise InstDiffError(
                f"InstanceDiffusion supports at most {MAX_INSTANCES} instances; remove {extra} "
                f"(the layout has {len(self.instances)})"
            )
        for i, inst in enumerate(self.instances):
            if not isinstance(inst, Instance):
                raise InstDiffError(f"instance {i}: expected an Instance, got {short(inst)}")
            self._check(i, inst)

    def _check(self, i: int, inst: Instance) -> None:
        w, h = self.width, self.height
        if not isinstance(inst.caption, str) or not inst.caption.strip():
            raise InstDiffError(f"instance {i} caption: empty; give every instance a short description")

        def inside(p, where):
            if not (0 <= p[0] <= w and 0 <= p[1] <= h):
                raise InstDiffError(
                    f"instance {i} {where}: ({p[0]:g}, {p[1]:g}) lies outside the {w}x{h} image; "
                    f"move it inside [0, {w}] x [0, {h}]"
                )

        if inst.box is not None:
            if not isinstance(inst.box, (list, tuple)) or len(inst.box) != 4:
                raise InstDiffError(f"instance {i} box: expected [x, y, width, height] in pixels, got {short(inst.box)}")
            x, y, bw, bh = (number(v, f"instance {i} box") for v in inst.box)
            if bw <= 0 or bh <= 0:
                raise InstDiffError(
                    f"instance {i} box: zero or negative area ({bw:g} x {bh:g}); give a positive width and height"
                )
            if x < 0 or y < 0 or x + bw > w or y + bh > h:
                raise InstDiffError(
                    f"instance {i} box: [{x:g}, {y:g}, {bw:g}, {bh:g}] (x, y, w, h) extends outside the {w}x{h} image; "
                    f"shrink or move it so 0 <= x, 0 <= y, x+w <= {w}, y+h <= {h}"
                )
            inst.box = (x, y, bw, bh)
        if inst.point is not None:
            inst.point = _xy(inst.point, f"instance {i} point")
            inside(inst.point, "point")
        if inst.scribble is not None:
            strokes = inst.scribble if _nested(inst.scribble) else [inst.scribble]
            inst.scribble = [_xy_list(s, f"instance {i} scribble stroke {j}") for j, s in enumerate(strokes)]
            for j, s in enumerate(inst.scribble):
                for p in s:
                    inside(p, f"scribble stroke {j}")
        if inst.polygon is not None:
            rings = inst.polygon if _nested(inst.polygon) else [inst.polygon]
            inst.polygon = [_xy_list(r, f"instance {i} polygon ring {j}") for j, r in enumerate(rings)]
            for j, r in enumerate(inst.polygon):
                if len(r) < 3:
                    raise InstDiffError(
                        f"instance {i} polygon ring {j}: has {len(r)} point(s), a polygon needs at least 3; add vertices or remove it"
                    )
                for p in r:
                    inside(p, f"polygon ring {j}")
        if inst.mask is not None:
            m = inst.mask
            if isinstance(m, dict):
                m = rle_decode(m, h, w, f"instance {i} mask")
            if not isinstance(m, np.ndarray) or m.dtype.kind not in "biuf":
                raise InstDiffError(
                    f"instance {i} mask: expected a COCO RLE object or a 2-D bool/number array, got {short(m)}"
                )
            if m.ndim != 2:
                raise InstDiffError(f"instance {i} mask: expected a 2-D array, got shape {m.shape}")
            if m.shape != (h, w):
                raise InstDiffError(
                    f"instance {i} mask: size {m.shape[0]}x{m.shape[1]} (HxW) differs from the image {h}x{w}; "
                    "resize the mask to the image size"
                )
            m = m != 0
            if not m.any():
                raise InstDiffError(f"instance {i} mask: empty (all zero); paint the instance or remove the mask")
            inst.mask = m
        if inst.color is not None and not (isinstance(inst.color, str) and _COLOR.fullmatch(inst.color)):
            raise InstDiffError(f"instance {i} color: expected '#rrggbb', got {short(inst.color)}")
        if all(v is None for v in (inst.box, inst.point, inst.scribble, inst.polygon, inst.mask)):
            raise InstDiffError(
                f"instance {i} ({inst.caption!r}): no location; give a box, point, scribble, polygon or mask"
            )

    @classmethod
    def from_json(cls, data) -> "Layout":
        """Parse a JSON string or an already-decoded dict; any problem raises InstDiffError."""
        data = decode_json(data, "layout")
        if not isinstance(data, dict):
            raise InstDiffError(f'layout must be a JSON object with "schema": "{SCHEMA}", got {short(data)}')
        if data.get("schema") != SCHEMA:
            raise InstDiffError(f'layout "schema" must be "{SCHEMA}", got {short(data.get("schema"))}')
        if data.get("version") != VERSION or not is_int(data.get("version")):
            raise InstDiffError(
                f"unknown layout schema version {short(data.get('version'))}; this build reads version {VERSION}"
            )
        unknown = sorted(str(k) for k in data if k not in _LAYOUT_KEYS)
        if unknown:
            raise InstDiffError(f"layout: unknown field(s) {unknown}; allowed: {sorted(_LAYOUT_KEYS)}")
        raw = data.get("instances", [])
        if not isinstance(raw, list):
            raise InstDiffError("layout instances must be a list of objects")
        instances = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise InstDiffError(f"instance {i}: expected an object, got {short(item)}")
            unknown = sorted(str(k) for k in item if k not in _INSTANCE_KEYS)
            if unknown:
                raise InstDiffError(f"instance {i}: unknown field(s) {unknown}; allowed: {sorted(_INSTANCE_KEYS)}")
            instances.append(Instance(**{"caption": "", **item}))
        return cls(width=data.get("width"), height=data.get("height"), caption=data.get("caption", ""), instances=instances)

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA, "version": VERSION, "width": self.width, "height": self.height,
            "caption": self.caption, "instances": [inst.to_dict() for inst in self.instances],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


# ---------------------------------------------------------------- seeded layouts (the Layout node's seed_layout)
# The editor stores two things the schema above does not have: an instance's "seed": k (it replaces instance k of
# the seed layout) and a top-level "seed_removed" list (seed instances the user deleted). The merge below is the
# only implementation: the node returns its result, with each instance's origin, and the editor shows that.
ORIGIN_SEED, ORIGIN_EDITED, ORIGIN_USER = "seed", "edited", "user"


def _clip_xy(p, sx, sy, w, h) -> tuple:
    return (clamp(p[0] * sx, float(w)), clamp(p[1] * sy, float(h)))


def scale_instance(inst: Instance, sw: int, sh: int, w: int, h: int) -> Instance:
    """A copy of `inst` (drawn on a sw x sh image) scaled to a w x h image, kept inside it."""
    if (sw, sh) == (w, h):
        return Instance(caption=inst.caption, box=inst.box, point=inst.point, scribble=inst.scribble,
                        polygon=inst.polygon, mask=inst.mask, color=inst.color)
    sx, sy = w / sw, h / sh
    box = None
    if inst.box is not None:
        x0, y0 = _clip_xy(inst.box[:2], sx, sy, w, h)
        x1, y1 = _clip_xy((inst.box[0] + inst.box[2], inst.box[1] + inst.box[3]), sx, sy, w, h)
        box = (x0, y0, max(x1 - x0, 1e-3), max(y1 - y0, 1e-3))
    pt = None if inst.point is None else _clip_xy(inst.point, sx, sy, w, h)
    lines = lambda v: None if v is None else [[_clip_xy(q, sx, sy, w, h) for q in s] for s in v]
    mask = None if inst.mask is None else resize_nearest(inst.mask, h, w)
    return Instance(caption=inst.caption, box=box, point=pt, scribble=lines(inst.scribble),
                    polygon=lines(inst.polygon), mask=mask, color=inst.color)


def _seed_index(value, where: str):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InstDiffError(f'{where}: "seed" must be the index (0, 1, ...) of an instance of seed_layout, '
                            f"got {value!r}; remove the field to make it your own instance")
    return value


def split_seed_records(data: dict) -> tuple:
    """Editor document -> (plain layout dict, [seed index or None per instance], set of removed seed indices)."""
    data = dict(data)
    removed = data.pop("seed_removed", [])
    if not isinstance(removed, list):
        raise InstDiffError(f'layout_json "seed_removed" must be a list of seed instance indices, got {removed!r}')
    removed = {_seed_index(v, "layout_json seed_removed") for v in removed}
    seeds, plain = [], []
    raw = data.get("instances", [])
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            if isinstance(item, dict) and "seed" in item:
                item = dict(item)
                seeds.append(_seed_index(item.pop("seed"), f"instance {i}"))
            else:
                seeds.append(None)
            plain.append(item)
        data["instances"] = plain
    return data, seeds, removed


def merge_seed(seed: Layout, own: Layout, seeds: list, removed: set) -> tuple:
    """(merged Layout, [(origin, seed index or None) per merged instance]).

    Seeded instances (scaled to `own`'s size) that were not removed, each replaced by the user's edit of it when
    there is one, in seed order; then the user's own instances in their order. An edit of a seed instance that no
    longer exists stays as an own instance (origin "user", its seed index kept so the editor writes it back)."""
    edits = {k: inst for k, inst in zip(seeds, own.instances) if k is not None and k < len(seed.instances)}
    merged, origins = [], []
    for k, inst in enumerate(seed.instances):
        if k in edits:
            merged.append(edits[k])
            origins.append((ORIGIN_EDITED, k))
        elif k not in removed:
            merged.append(scale_instance(inst, seed.width, seed.height, own.width, own.height))
            origins.append((ORIGIN_SEED, k))
    for k, inst in zip(seeds, own.instances):
        if k is None or k >= len(seed.instances):
            merged.append(inst)
            origins.append((ORIGIN_USER, k))
    return Layout(width=own.width, height=own.height, caption=own.caption, instances=merged), origins


def with_origins(layout: Layout, origins: list) -> dict:
    """The layout's JSON object with each instance's "origin" (and "seed" index when it has one), for the editor."""
    d = layout.to_dict()
    for inst, (origin, k) in zip(d["instances"], origins):
        inst["origin"] = origin
        if k is not None:
            inst["seed"] = k
    return d
