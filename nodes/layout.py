"""Layout construction nodes: the layout (JSON / editor), chainable add-instance nodes, importers, keyframes."""
import json

from ..instdiff_model.errors import InstDiffError
from ..instdiff_model.importers import from_coco, from_official_demo
from ..instdiff_model.keyframes import check_keyframes_cost, interpolate_keyframes
from ..instdiff_model.layout import (
    SCHEMA,
    VERSION,
    Instance,
    Layout,
    Origin,
    merge_seed,
    split_seed_records,
    with_origins,
)
from ..instdiff_model.values import decode_json

CATEGORY = "InstanceDiffusion/layout"
LAYOUT = "INSTANCE_LAYOUT"
LAYOUT_IN_TIP = "The layout to add to (Layout node, another Add Instance node, an import)."
CAPTION_TIP = "What this instance is, e.g. 'a red vintage car' (a short noun phrase works best)."


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
    DESCRIPTION = ("The layout of an InstanceDiffusion image: its size, global caption and instances, drawn in the "
                   "editor (boxes, points, scribbles, polygons, masks). Connect seed_layout to start from detections "
                   "or an import; your edits of \"seed\" instances (and \"seed_removed\" ones) are kept.")
    SEARCH_ALIASES = ["instancediffusion", "layout", "layout editor", "bbox", "bounding box", "regional prompt",
                      "regional", "gligen", "draw boxes", "instances", "composition"]
    OUTPUT_TOOLTIPS = ("The layout (size, caption, instances) for the Instance Tokenizer, Add Instance nodes or the "
                       "Layout Preview.",)
    CATEGORY = CATEGORY
    RETURN_TYPES = (LAYOUT,)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "width": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8, "tooltip": (
                "Image width in pixels; use the latent's size (SD1.5: 512, or 384-768). Instances scale with it.")}),
            "height": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8, "tooltip": (
                "Image height in pixels; use the latent's size (SD1.5: 512, or 384-768).")}),
            "caption": ("STRING", {"default": "", "multiline": True, "tooltip": (
                "The global caption of the whole image (the layout's; write the same scene in the positive prompt).")}),
            "layout_json": ("STRING", {"default": empty_layout_json(), "multiline": True, "dynamicPrompts": False,
                                       "tooltip": "What the editor draws, as layout JSON (hidden under the editor); "
                                                  "edit it by hand or paste a layout."}),
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
        seed_sized = bool(seed_layout) and not data.get("instances") and not removed  # nothing drawn or deleted
        w, h = (seed_layout[0].width, seed_layout[0].height) if seed_sized else (width, height)
        own = Layout.from_json(dict(data, width=w, height=h, caption=caption or data.get("caption", "")))
        if not seed_layout:
            return self._shown([own], [(Origin.USER, k) for k in seeds], layout_json)
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
        with its Origin ("seed", "edited" or "user"), and the layout_json text it was merged from."""
        shown = {"layout": with_origins(frames[0], origins), "layout_json": layout_json}
        return {"ui": {"instdiff_layout": [shown]}, "result": (frames,)}


class AddBoxInstance:
    DESCRIPTION = "Add an instance to the layout: a caption and a box (x, y, width, height in image pixels)."
    SEARCH_ALIASES = ["instancediffusion", "add box", "bbox", "bounding box", "add instance", "regional prompt",
                      "gligen box", "layout"]
    OUTPUT_TOOLTIPS = ("The layout with this box instance appended (chain more Add Instance nodes).",)
    CATEGORY = CATEGORY
    RETURN_TYPES = (LAYOUT,)
    FUNCTION = "add"

    @classmethod
    def INPUT_TYPES(cls):
        px = {"default": 0, "min": 0, "max": 8192, "step": 1}
        return {"required": {"layout": (LAYOUT, {"tooltip": LAYOUT_IN_TIP}),
                             "caption": ("STRING", {"default": "", "multiline": False, "tooltip": CAPTION_TIP}),
                             "x": ("INT", dict(px, tooltip="Left edge of the box, pixels from the image's left.")),
                             "y": ("INT", dict(px, tooltip="Top edge of the box, pixels from the image's top.")),
                             "width": ("INT", dict(px, default=128, tooltip="Box width in pixels.")),
                             "height": ("INT", dict(px, default=128, tooltip="Box height in pixels."))},
                **WEIGHT}

    def add(self, layout, caption, x, y, width, height, weight=1.0):
        return with_instance(layout, Instance(caption=caption, box=(x, y, width, height), weight=weight))


class AddPointInstance:
    DESCRIPTION = "Add an instance to the layout: a caption and one point (image pixels) it should cover."
    SEARCH_ALIASES = ["instancediffusion", "add point", "point", "add instance", "keypoint", "regional prompt",
                      "layout"]
    OUTPUT_TOOLTIPS = ("The layout with this point instance appended (chain more Add Instance nodes).",)
    CATEGORY = CATEGORY
    RETURN_TYPES = (LAYOUT,)
    FUNCTION = "add"

    @classmethod
    def INPUT_TYPES(cls):
        px = {"default": 256, "min": 0, "max": 8192, "step": 1}
        return {"required": {"layout": (LAYOUT, {"tooltip": LAYOUT_IN_TIP}),
                             "caption": ("STRING", {"default": "", "tooltip": CAPTION_TIP}),
                             "x": ("INT", dict(px, tooltip="The point's x in pixels (a spot on the object).")),
                             "y": ("INT", dict(px, tooltip="The point's y in pixels (a spot on the object)."))},
                **WEIGHT}

    def add(self, layout, caption, x, y, weight=1.0):
        return with_instance(layout, Instance(caption=caption, point=(x, y), weight=weight))


class AddShapeInstance:
    DESCRIPTION = ("Add an instance to the layout: a caption and scribble strokes or polygon outlines written as "
                   "'x,y x,y ...' in pixels, one per line.")
    SEARCH_ALIASES = ["instancediffusion", "add scribble", "add polygon", "scribble", "polygon", "outline",
                      "add instance", "regional prompt", "layout"]
    OUTPUT_TOOLTIPS = ("The layout with this scribble / polygon instance appended.",)
    CATEGORY = CATEGORY
    RETURN_TYPES = (LAYOUT,)
    FUNCTION = "add"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"layout": (LAYOUT, {"tooltip": LAYOUT_IN_TIP}),
                             "caption": ("STRING", {"default": "", "tooltip": CAPTION_TIP}),
                             "kind": (["scribble", "polygon"], {"tooltip": (
                                 "scribble: free strokes over the object (the tokenizer's auto config then uses "
                                 "the official scribble config); polygon: closed outlines of the object.")}),
                             "points": ("STRING", {"default": "", "multiline": True, "dynamicPrompts": False,
                                                   "tooltip": "Pixels as 'x,y x,y ...'; one stroke or outline per "
                                                              "line (or separated by ';')."})},
                **WEIGHT}

    def add(self, layout, caption, kind, points, weight=1.0):
        shapes = parse_points(points, f"{kind} of {caption!r}")
        return with_instance(layout, Instance(caption=caption, weight=weight, **{kind: shapes}))


class AddMaskInstance:
    DESCRIPTION = ("Add an instance to the layout: a caption and a MASK (e.g. from Load Image as Mask or a "
                   "segmenter); its box, polygon and scribble are derived from the mask as in the official code.")
    SEARCH_ALIASES = ["instancediffusion", "add mask", "mask", "segmentation", "add instance", "regional prompt",
                      "regional mask", "layout"]
    OUTPUT_TOOLTIPS = ("The layout with this mask instance appended.",)
    CATEGORY = CATEGORY
    RETURN_TYPES = (LAYOUT,)
    FUNCTION = "add"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"layout": (LAYOUT, {"tooltip": LAYOUT_IN_TIP}),
                             "caption": ("STRING", {"default": "", "tooltip": CAPTION_TIP}),
                             "mask": ("MASK", {"tooltip": "The instance's mask at the layout's size (the first mask "
                                                          "of a batch is used)."}),
                             "threshold": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01,
                                                     "tooltip": "Mask values above this are the instance; 0.5 for "
                                                                "hard masks, lower for soft or feathered ones."})},
                **WEIGHT}

    def add(self, layout, caption, mask, threshold, weight=1.0):
        m = mask[0] if mask.ndim == 3 else mask
        return with_instance(layout, Instance(caption=caption, mask=(m.float().cpu().numpy() > threshold),
                                              weight=weight))


class ImportLayout:
    DESCRIPTION = ("Import a layout from the official InstanceDiffusion demo JSON or from COCO annotations "
                   "(boxes, polygons, RLE masks); what had to be clamped is listed in 'notes'.")
    SEARCH_ALIASES = ["instancediffusion", "import layout", "coco", "demo json", "load layout", "annotations",
                      "bbox", "layout"]
    OUTPUT_TOOLTIPS = ("The imported layout (connect to the Layout node's seed_layout to edit it).",
                       "What was changed while importing (e.g. boxes clamped to the image), one note per line.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LAYOUT, "STRING")
    RETURN_NAMES = ("layout", "notes")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "", "multiline": True, "dynamicPrompts": False,
                                                 "tooltip": "The JSON text: an official demos/*.json file or a "
                                                            "COCO annotations file."}),
                             "format": (["official demo", "coco"], {"tooltip": (
                                 "official demo: InstanceDiffusion's demos/*.json (caption + annos); coco: COCO "
                                 "instances JSON (captions from category names).")}),
                             "coco_image_id": ("INT", {"default": -1, "min": -1, "max": 2**31 - 1, "tooltip": (
                                 "COCO only: the id of the image whose annotations to import; -1 = the file's only image.")}),
                             "caption": ("STRING", {"default": "", "tooltip": (
                                 "Global caption; empty keeps the file's (demo) or joins the category names "
                                 "(COCO, as the official code).")})}}

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
    DESCRIPTION = ("Per-frame layouts for a batch of latents (video, AnimateDiff): boxes, points and instance weights move linearly "
                   "between keyframes, instance by instance; latent i gets frame i.")
    SEARCH_ALIASES = ["instancediffusion", "keyframes", "video layout", "animation", "animatediff",
                      "moving boxes", "per frame", "interpolate", "bbox", "layout"]
    OUTPUT_TOOLTIPS = ("One layout per frame (a batch), for the Instance Tokenizer and a latent batch of 'frames'.",)
    CATEGORY = CATEGORY
    RETURN_TYPES = (LAYOUT,)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"keyframes": ("STRING", {"default": "[]", "multiline": True, "dynamicPrompts": False,
                                                      "tooltip": "JSON [{\"frame\": 0, \"layout\": {...}}, ...]: "
                                                                 "the same instances in every keyframe, in the "
                                                                 "same order."}),
                             "frames": ("INT", {"default": 16, "min": 1, "max": 4096, "tooltip": (
                                 "How many frames to make; match the latent batch size (e.g. 16 for AnimateDiff).")})}}

    def build(self, keyframes, frames):
        data = decode_json(keyframes, "keyframes", "{what} are not valid JSON: {exc}")
        if not isinstance(data, list) or not all(isinstance(k, dict) and "frame" in k and "layout" in k for k in data):
            raise InstDiffError('keyframes must be a JSON list of {"frame": <int>, "layout": <layout JSON>}')
        raw = [(int(k["frame"]), decode_json(k["layout"], "layout")) for k in data]
        check_keyframes_cost(raw, frames)
        return (interpolate_keyframes([(f, Layout.from_json(layout)) for f, layout in raw], frames),)


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
