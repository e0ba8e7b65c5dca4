"""Layout construction nodes: the layout (JSON / editor), chainable add-instance nodes, importers, keyframes."""
import json

from ..instdiff_model.errors import InstDiffError
from ..instdiff_model.importers import from_coco, from_official_demo
from ..instdiff_model.keyframes import interpolate_keyframes
from ..instdiff_model.layout import (
    ORIGIN_USER,
    SCHEMA,
    VERSION,
    Instance,
    Layout,
    merge_seed,
    split_seed_records,
    with_origins,
)
from ..instdiff_model.values import decode_json

CATEGORY = "InstanceDiffusion/layout"
LAYOUT = "INSTANCE_LAYOUT"


def empty_layout_json(width=512, height=512, caption="") -> str:
    return json.dumps({"schema": SCHEMA, "version": VERSION, "width": width, "height": height,
                       "caption": caption, "instances": []})


WEIGHT = {"optional": {"weight": ("FLOAT", {
    "default": 1.0, "min": 0.0, "max": 3.0, "step": 0.05,
    "tooltip": "How strongly the model enforces this instance in its region: 1 = the official model, 0 = its "
               "grounding off there, 1.5-2 to insist on an ignored instance (0-3; the background and other instances "
               "keep theirs)."})}}


def with_instance(frames: list, instance: Instance) -> tuple:
    """New layout frames, each with `instance` appended (inputs are never mutated: the host caches them)."""
    return ([Layout(width=f.width, height=f.height, caption=f.caption, instances=list(f.instances) + [instance])
             for f in frames],)


def parse_points(text: str, what: str) -> list:
    """'x,y x,y ...' (one stroke/ring per line or ';'-separated group) -> [[(x, y), ...], ...]."""
    groups = [g for g in text.replace(";", "\n").splitlines() if g.strip()]
    if not groups:
        raise InstDiffError(f"{what}: no points given; write them as 'x,y x,y ...' in pixels")
    out = []
    for g in groups:
        pts = []
        for tok in g.split():
            try:
                x, y = (float(v) for v in tok.split(","))
            except ValueError:
                raise InstDiffError(f"{what}: cannot read {tok!r}; write points as 'x,y' pairs separated by spaces") from None
            pts.append((x, y))
        out.append(pts)
    return out


class InstanceLayoutNode:
    DESCRIPTION = (
        "The layout of an InstanceDiffusion image: size, global caption and instances. The JSON holds what the "
        "editor draws; width/height/caption here override it. Chain 'Add ...' nodes to add instances.\n"
        "seed_layout (optional, e.g. from 'Layout from detections' or 'Import Layout'): its instances are part of "
        "the output and, after a run, appear in the editor, where you can move, resize, re-caption or delete "
        "them. Rules: the output has the seed's instances first, in seed order (scaled to width x height), each "
        "replaced by your edit of it and without the ones you deleted, then your own instances. Your edits are "
        "kept in layout_json (an instance with \"seed\": k replaces seed instance k; \"seed_removed\" lists deleted "
        "ones), so they survive re-runs while untouched seed instances follow the input. While layout_json has no "
        "instances and nothing deleted, the output takes the seed's width, height and (if caption is empty) "
        "caption, and the editor adopts that size. For a multi-frame seed each frame is merged the same way. "
        "Without seed_layout, \"seed\" fields are ignored.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LAYOUT,)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "width": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8}),
            "height": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8}),
            "caption": ("STRING", {"default": "", "multiline": True}),
            "layout_json": ("STRING", {"default": empty_layout_json(), "multiline": True, "dynamicPrompts": False}),
        }, "optional": {
            "seed_layout": (LAYOUT, {"tooltip": "Instances to start from (e.g. detections); edit them in the "
                                                "editor after a run. Your edits stay on top when the input changes."}),
        }}

    def build(self, width, height, caption, layout_json, seed_layout=None):
        text = layout_json.strip() or empty_layout_json(width, height, caption)
        data = decode_json(text, "layout_json", "{what} is not valid JSON ({exc}); fix it or clear the field")
        if not isinstance(data, dict):
            return ([Layout.from_json(data)],)  # the schema's own error message
        data, seeds, removed = split_seed_records(data)
        untouched = bool(seed_layout) and not data.get("instances") and not removed  # sized like the seed
        w, h = (seed_layout[0].width, seed_layout[0].height) if untouched else (width, height)
        own = Layout.from_json(dict(data, width=w, height=h, caption=caption or data.get("caption", "")))
        if not seed_layout:
            return self._shown([own], [(ORIGIN_USER, k) for k in seeds], layout_json)
        out, origins = [], None
        for f in seed_layout:
            frame_own = own if own.caption else Layout(width=w, height=h, caption=f.caption, instances=own.instances)
            merged, frame_origins = merge_seed(f, frame_own, seeds, removed)
            out.append(merged)
            origins = origins or frame_origins
        return self._shown(out, origins, layout_json)

    @staticmethod
    def _shown(frames: list, origins: list, layout_json: str) -> dict:
        """The result plus, for the editor, what it was made of: the first frame as merged here, each instance
        with its origin ("seed", "edited" or "user"), and the layout_json text it was merged from."""
        shown = {"layout": with_origins(frames[0], origins), "layout_json": layout_json}
        return {"ui": {"instdiff_layout": [shown]}, "result": (frames,)}


class AddBoxInstance:
    DESCRIPTION = "Add an instance: caption + box (x, y, width, height in image pixels)."
    CATEGORY = CATEGORY
    RETURN_TYPES = (LAYOUT,)
    FUNCTION = "add"

    @classmethod
    def INPUT_TYPES(cls):
        px = {"default": 0, "min": 0, "max": 8192, "step": 1}
        return {"required": {"layout": (LAYOUT,), "caption": ("STRING", {"default": "", "multiline": False}),
                             "x": ("INT", px), "y": ("INT", px),
                             "width": ("INT", dict(px, default=128)), "height": ("INT", dict(px, default=128))},
                **WEIGHT}

    def add(self, layout, caption, x, y, width, height, weight=1.0):
        return with_instance(layout, Instance(caption=caption, box=(x, y, width, height), weight=weight))


class AddPointInstance:
    DESCRIPTION = "Add an instance: caption + one point (image pixels)."
    CATEGORY = CATEGORY
    RETURN_TYPES = (LAYOUT,)
    FUNCTION = "add"

    @classmethod
    def INPUT_TYPES(cls):
        px = {"default": 256, "min": 0, "max": 8192, "step": 1}
        return {"required": {"layout": (LAYOUT,), "caption": ("STRING", {"default": ""}),
                             "x": ("INT", px), "y": ("INT", px)}, **WEIGHT}

    def add(self, layout, caption, x, y, weight=1.0):
        return with_instance(layout, Instance(caption=caption, point=(x, y), weight=weight))


class AddShapeInstance:
    DESCRIPTION = ("Add an instance: caption + scribble strokes or polygon rings written as 'x,y x,y ...' in "
                   "pixels, one stroke/ring per line.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LAYOUT,)
    FUNCTION = "add"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"layout": (LAYOUT,), "caption": ("STRING", {"default": ""}),
                             "kind": (["scribble", "polygon"],),
                             "points": ("STRING", {"default": "", "multiline": True, "dynamicPrompts": False})},
                **WEIGHT}

    def add(self, layout, caption, kind, points, weight=1.0):
        shapes = parse_points(points, f"{kind} of {caption!r}")
        return with_instance(layout, Instance(caption=caption, weight=weight, **{kind: shapes}))


class AddMaskInstance:
    DESCRIPTION = ("Add an instance: caption + a ComfyUI MASK at the layout size (the first mask of a batch). "
                   "Its polygon, scribble and box are derived from the mask as in the official code.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LAYOUT,)
    FUNCTION = "add"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"layout": (LAYOUT,), "caption": ("STRING", {"default": ""}), "mask": ("MASK",),
                             "threshold": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01})},
                **WEIGHT}

    def add(self, layout, caption, mask, threshold, weight=1.0):
        m = mask[0] if mask.ndim == 3 else mask
        return with_instance(layout, Instance(caption=caption, mask=(m.float().cpu().numpy() > threshold),
                                              weight=weight))


class ImportLayout:
    DESCRIPTION = ("Import a layout from the official InstanceDiffusion demo JSON or from COCO annotations "
                   "(boxes in pixels, polygons, RLE masks). Boxes reaching outside the image are clamped (listed in 'notes').")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LAYOUT, "STRING")
    RETURN_NAMES = ("layout", "notes")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "", "multiline": True, "dynamicPrompts": False}),
                             "format": (["official demo", "coco"],),
                             "coco_image_id": ("INT", {"default": -1, "min": -1, "max": 2**31 - 1}),
                             "caption": ("STRING", {"default": ""})}}

    def load(self, text, format, coco_image_id, caption):
        notes = []
        if format == "coco":
            layout = from_coco(text, image_id=None if coco_image_id < 0 else coco_image_id,
                               caption=caption or None, notes=notes)
        else:
            layout = from_official_demo(text, notes=notes)
            if caption:
                layout.caption = caption
        return ([layout], "\n".join(notes))


class LayoutKeyframes:
    DESCRIPTION = ("Per-frame layouts for a batch of latents (e.g. AnimateDiff): keyframes as JSON "
                   "[{\"frame\": 0, \"layout\": {...}}, ...]; boxes, points and instance weights are interpolated "
                   "linearly between keyframes, instance by instance. Latent i gets frame i.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LAYOUT,)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"keyframes": ("STRING", {"default": "[]", "multiline": True, "dynamicPrompts": False}),
                             "frames": ("INT", {"default": 16, "min": 1, "max": 4096})}}

    def build(self, keyframes, frames):
        data = decode_json(keyframes, "keyframes", "{what} are not valid JSON: {exc}")
        if not isinstance(data, list) or not all(isinstance(k, dict) and "frame" in k and "layout" in k for k in data):
            raise InstDiffError('keyframes must be a JSON list of {"frame": <int>, "layout": <layout JSON>}')
        return (interpolate_keyframes([(int(k["frame"]), Layout.from_json(k["layout"])) for k in data], frames),)


NODE_CLASS_MAPPINGS = {
    "InstanceDiffusionLayout": InstanceLayoutNode,
    "InstanceDiffusionAddBox": AddBoxInstance,
    "InstanceDiffusionAddPoint": AddPointInstance,
    "InstanceDiffusionAddShape": AddShapeInstance,
    "InstanceDiffusionAddMask": AddMaskInstance,
    "InstanceDiffusionImportLayout": ImportLayout,
    "InstanceDiffusionLayoutKeyframes": LayoutKeyframes,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "InstanceDiffusionLayout": "InstanceDiffusion Layout",
    "InstanceDiffusionAddBox": "Add Instance (box)",
    "InstanceDiffusionAddPoint": "Add Instance (point)",
    "InstanceDiffusionAddShape": "Add Instance (scribble / polygon)",
    "InstanceDiffusionAddMask": "Add Instance (mask)",
    "InstanceDiffusionImportLayout": "Import Layout (demo JSON / COCO)",
    "InstanceDiffusionLayoutKeyframes": "Layout Keyframes (per frame)",
}
