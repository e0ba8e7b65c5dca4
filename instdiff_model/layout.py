"""Instance layout: image size, global caption and up to 30 captioned instances, with a versioned JSON schema."""
# JSON (schema "instdiff.layout", version 1), all coordinates in pixels of the width x height image:
#     {"schema": "instdiff.layout", "version": 1, "width": W, "height": H, "caption": "global prompt",
#      "instances": [{"caption": "...", "box": [x, y, w, h], "point": [x, y],
#                     "scribble": [[[x, y], ...], ...],          # strokes; a single stroke [[x, y], ...] is accepted
#                     "polygon": [[[x, y], ...], ...],           # rings (>= 3 vertices); a single ring is accepted
#                     "mask": {"size": [H, W], "counts": "..."}, # COCO RLE, compressed string or list of run lengths
#                     "color": "#rrggbb", "weight": 1.0}]}       # weight in [0, 3], omitted when 1
# Every instance needs a caption and at least one of box / point / scribble / polygon / mask (the location kinds,
# each defined in locations.py).
# Out-of-image policy: anything outside [0, W] x [0, H] (or a mask of another size) is refused with an
# InstDiffError naming the instance index, the field and the fix; nothing is clipped silently.
import json
import re
from dataclasses import dataclass, field
from enum import StrEnum

from .constants import MAX_INSTANCES
from .errors import InstDiffError, concerning
from .limits import MAX_LAYOUT_POINTS
from .locations import CHOICES, KEYS, Instance, check_locations, locations_of, scale_instance
from .values import check_cost, decode_json, is_int, number, short

SCHEMA = "instdiff.layout"
VERSION = 1
MAX_SIDE = 8192
MIN_WEIGHT, MAX_WEIGHT = 0.0, 3.0  # per-instance weight (instance_weight.py): beyond 3 the fuser residual swamps the block
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_INSTANCE_KEYS = {"caption", *KEYS, "color", "weight"}
_LAYOUT_KEYS = {"schema", "version", "width", "height", "caption", "instances"}


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
                raise InstDiffError(f"instance {i}: expected an Instance, got {short(inst)}", index=i)
        points, masks = location_cost(self.instances)
        check_cost(points, masks * self.width * self.height, "the layout")
        for i, inst in enumerate(self.instances):
            with concerning(index=i):
                self._check(i, inst)

    def _check(self, i: int, inst: Instance) -> None:
        if not isinstance(inst.caption, str) or not inst.caption.strip():
            raise InstDiffError(f"instance {i} caption: empty; give every instance a short description",
                                field="caption")
        check_locations(inst, f"instance {i}", self.width, self.height)
        if inst.color is not None and not (isinstance(inst.color, str) and _COLOR.fullmatch(inst.color)):
            raise InstDiffError(f"instance {i} color: expected '#rrggbb', got {short(inst.color)}", field="color")
        if not locations_of(inst):
            raise InstDiffError(f"instance {i} ({inst.caption!r}): no location; give {CHOICES}")
        with concerning(field="weight"):
            inst.weight = number(inst.weight, f"instance {i} weight")
            if not MIN_WEIGHT <= inst.weight <= MAX_WEIGHT:
                raise InstDiffError(f"instance {i} weight: {inst.weight:g} is outside {MIN_WEIGHT:g}..{MAX_WEIGHT:g}; "
                                    "1 is the official strength, 0 turns the instance's grounding off in its region")

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
                raise InstDiffError(f"instance {i}: expected an object, got {short(item)}", index=i)
            unknown = sorted(str(k) for k in item if k not in _INSTANCE_KEYS)
            if unknown:
                raise InstDiffError(f"instance {i}: unknown field(s) {unknown}; allowed: {sorted(_INSTANCE_KEYS)}",
                                    index=i)
            instances.append(Instance(**{"caption": "", **item}))
        return cls(width=data.get("width"), height=data.get("height"), caption=data.get("caption", ""), instances=instances)

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA, "version": VERSION, "width": self.width, "height": self.height,
            "caption": self.caption, "instances": [inst.to_dict() for inst in self.instances],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def _points(v, limit: int) -> int:
    """Points of raw strokes/rings (pairs, lists of pairs, or COCO flat rings), counted up to about `limit`."""
    if not isinstance(v, (list, tuple)):
        return 0
    if len(v) > limit:
        return len(v)
    total = 0
    for s in v:
        pairs = isinstance(s, (list, tuple)) and bool(s) and isinstance(s[0], (list, tuple))
        total += len(s) if pairs else len(s) // 2 if isinstance(s, (list, tuple)) and len(s) != 2 else 1
        if total > limit:
            break
    return total


def location_cost(instances) -> tuple:
    """(scribble/polygon points, masks) of `instances`: Instances or their raw JSON (layout instances, demo
    annotations, COCO annotations), counted before anything is decoded or rasterised."""
    points = masks = 0
    for inst in instances:
        get = inst.get if isinstance(inst, dict) else lambda key, i=inst: getattr(i, key, None)
        for key in ("scribble", "polygon", "segmentation"):
            points += _points(get(key), MAX_LAYOUT_POINTS)
        mask = get("mask")
        if isinstance(mask, list):  # demo: polygons, rasterised to a mask
            points += _points(mask, MAX_LAYOUT_POINTS)
        masks += bool(mask is not None and not (isinstance(mask, list) and not mask)) or isinstance(
            get("segmentation"), dict)
    return points, masks


# ---------------------------------------------------------------- seeded layouts (the Layout node's seed_layout)
# The editor stores two things the schema above does not have: an instance's "seed": k (it replaces instance k of
# the seed layout) and a top-level "seed_removed" list (seed instances the user deleted). The merge below is the
# only implementation: the node returns its result, with each instance's origin, and the editor shows that.
class Origin(StrEnum):
    """Where an instance of the merged layout comes from (its "origin" in what the node sends to the editor)."""

    SEED = "seed"  # a seed_layout instance, scaled, as it is
    EDITED = "edited"  # the user's edit of a seed_layout instance
    USER = "user"  # the user's own instance


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
                with concerning(index=i, field="seed"):
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
    longer exists stays as an own instance (Origin.USER, its seed index kept so the editor writes it back)."""
    edits = {k: inst for k, inst in zip(seeds, own.instances) if k is not None and k < len(seed.instances)}
    merged, origins = [], []
    for k, inst in enumerate(seed.instances):
        if k in edits:
            merged.append(edits[k])
            origins.append((Origin.EDITED, k))
        elif k not in removed:
            merged.append(scale_instance(inst, seed.width, seed.height, own.width, own.height))
            origins.append((Origin.SEED, k))
    for k, inst in zip(seeds, own.instances):
        if k is None or k >= len(seed.instances):
            merged.append(inst)
            origins.append((Origin.USER, k))
    return Layout(width=own.width, height=own.height, caption=own.caption, instances=merged), origins


def with_origins(layout: Layout, origins: list) -> dict:
    """The layout's JSON object with each instance's "origin" (and "seed" index when it has one), for the editor."""
    d = layout.to_dict()
    for inst, (origin, k) in zip(d["instances"], origins):
        inst["origin"] = Origin(origin).value
        if k is not None:
            inst["seed"] = k
    return d
