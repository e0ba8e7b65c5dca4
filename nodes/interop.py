"""Interop nodes: detections / masks from other ComfyUI nodes -> our layout, and our layout -> core boxes."""
# Pure conversion logic lives in instdiff_model/interop.py; this module is the ComfyUI glue.
import re

import torch

from ..instdiff_model import interop
from ..instdiff_model.constants import MAX_INSTANCES
from ..instdiff_model.errors import InstDiffError
from ..instdiff_model.layout import Layout

CATEGORY = "InstanceDiffusion/layout"
LAYOUT = "INSTANCE_LAYOUT"
BOUNDING_BOX = "BOUNDING_BOX"  # ComfyUI core (comfy_api io.BoundingBox): {x, y, width, height} pixels
# Core (comfy_api io.BoundingBoxes, the Create Bounding Boxes canvas state): [{x, y, width, height, metadata}].
# Plain type strings, so the 2024 host (which knows neither) still loads the nodes.
BOUNDING_BOXES = "BOUNDING_BOXES"
_INSTANCE_REF = re.compile(r"^instance (\d+)")


def _rename_error(exc: InstDiffError, sources: dict) -> InstDiffError:
    """Layout validation names 'instance N'; say which imported element that was."""
    m = _INSTANCE_REF.match(str(exc))
    if m and int(m.group(1)) in sources:
        return InstDiffError(f"{sources[int(m.group(1))]}: {exc}")
    return exc


class LayoutFromDetections:
    DESCRIPTION = (
        "Turn other nodes' detections into InstanceDiffusion instances, appended to the connected layout (or a "
        "new width x height layout). Inputs, imported in this order: core BOUNDING_BOX (RT-DETR / SAM3 Detect, "
        "Create Bounding Boxes; {x, y, width, height} pixels), core BOUNDING_BOXES (boxes with metadata; caption "
        "from metadata.desc, then metadata.text), Create Bounding Boxes 'elements' (carry the canvas's "
        "descriptions), a box list (KJNodes BBOX, Florence-2 JSON data, or boxes_json text) read with box_format, "
        "Impact Pack SEGS (box + mask), and a MASK batch (one instance per mask). Connect the result to the "
        "Layout node's seed_layout to edit it in our editor. "
        "Captions come from the detection labels; each line of 'captions' overrides one instance in "
        "import order (a blank line keeps the label). Pixel boxes are in source_image pixels when connected, "
        "else in layout pixels; SEGS and masks carry their own size. Everything is scaled to the layout."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = (LAYOUT, "STRING")
    RETURN_NAMES = ("layout", "notes")
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "width": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8,
                                  "tooltip": "Size of a new layout (ignored when 'layout' is connected)."}),
                "height": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8}),
                "caption": ("STRING", {"default": "", "multiline": True,
                                       "tooltip": "Global caption (replaces the connected layout's when not empty)."}),
                "captions": ("STRING", {"default": "", "multiline": True, "dynamicPrompts": False,
                                        "tooltip": "One caption per imported instance, in import order; a blank "
                                                   "line keeps the detected label."}),
                "box_format": (list(interop.BOX_FORMATS), {"default": "xyxy",
                                                           "tooltip": "How 'bboxes' / 'florence2_data' / "
                                                                      "'boxes_json' boxes are written."}),
                "out_of_image": (["clamp", "error"], {"default": "clamp"}),
                "min_score": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01}),
                "mask_threshold": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}),
                "segs_masks": ("BOOLEAN", {"default": True, "tooltip": "Use SEGS masks (else boxes only)."}),
                "frame": ("INT", {"default": 0, "min": 0, "max": 100000,
                                  "tooltip": "Which image's detections to take from per-image box lists."}),
                "boxes_json": ("STRING", {"default": "", "multiline": True, "dynamicPrompts": False,
                                          "tooltip": "Boxes as JSON text: [[...], ...], [{\"bbox\": [...], "
                                                     "\"label\": ...}], or {\"bboxes\": [...], \"labels\": [...]}."}),
            },
            "optional": {
                "layout": (LAYOUT,),
                "source_image": ("IMAGE", {"tooltip": "The image the boxes were detected on (its size is the "
                                                      "pixel space of the box inputs)."}),
                "bounding_boxes": (BOUNDING_BOX, {"forceInput": True}),
                "boxes_with_metadata": (BOUNDING_BOXES, {"forceInput": True,
                                                         "tooltip": "Core BOUNDING_BOXES: captions from "
                                                                    "metadata.desc, then metadata.text."}),
                "elements": ("ARRAY", {"tooltip": "Create Bounding Boxes 'elements' output: its boxes with "
                                                  "their descriptions (bbox on the canvas's 0..1000 grid)."}),
                "bboxes": ("BBOX",),
                "florence2_data": ("JSON",),
                "segs": ("SEGS",),
                "masks": ("MASK",),
            },
        }

    def build(self, width, height, caption, captions, box_format, out_of_image, min_score, mask_threshold,
              segs_masks, frame, boxes_json, layout=None, source_image=None, bounding_boxes=None,
              boxes_with_metadata=None, elements=None, bboxes=None, florence2_data=None, segs=None, masks=None):
        frames = list(layout) if layout else [Layout(width=width, height=height, caption=caption)]
        lw, lh = frames[0].width, frames[0].height
        src = (int(source_image.shape[2]), int(source_image.shape[1])) if source_image is not None else (lw, lh)
        dets = interop.from_bounding_box(bounding_boxes, frame)
        dets += interop.from_bounding_box(boxes_with_metadata, frame, BOUNDING_BOXES)
        dets += interop.from_elements(elements)
        dets += interop.from_box_list(bboxes, box_format, src, frame, "BBOX")
        dets += interop.from_box_list(florence2_data, box_format, src, frame, "florence2_data")
        dets += interop.from_box_list(boxes_json, box_format, src, frame, "boxes_json")
        dets += interop.from_segs(segs, use_masks=segs_masks, threshold=mask_threshold)
        dets += interop.from_masks(masks, threshold=mask_threshold)
        if not dets:
            raise InstDiffError("Layout from detections: nothing to import; connect bounding_boxes, "
                                "boxes_with_metadata, elements, bboxes, florence2_data, segs or masks, or fill "
                                "boxes_json")
        notes = []
        out = []
        for f in frames:
            instances = interop.detections_to_instances(
                dets, f.width, f.height, source_size=src, captions=captions, out_of_image=out_of_image,
                min_score=min_score, notes=notes if not out else None)
            base = len(f.instances)
            kept = [d for d in dets if d.score is None or d.score >= min_score]
            sources = {base + k: d.source for k, d in enumerate(kept)}
            if base + len(instances) > MAX_INSTANCES:
                raise InstDiffError(
                    f"InstanceDiffusion supports at most {MAX_INSTANCES} instances; the layout has {base} and "
                    f"{len(instances)} were imported; raise min_score or pass fewer detections")
            try:
                out.append(Layout(width=f.width, height=f.height, caption=caption.strip() or f.caption,
                                  instances=list(f.instances) + instances))
            except InstDiffError as exc:
                raise _rename_error(exc, sources) from None
        return (out, "\n".join(notes))


class LayoutToBoundingBoxes:
    DESCRIPTION = (
        "Our layout as ComfyUI core BOUNDING_BOX (one list per layout frame of {x, y, width, height} in pixels, "
        "label = caption, metadata = {type: obj, text: '', desc: caption, palette: [the instance's colour if it "
        "has one], weight: the instance's weight when it is not 1}) for core nodes such as SAM3 Detect, Draw BBoxes, crops, or Create Bounding Boxes' 'bboxes' "
        "input (seeds its canvas with our boxes and captions; it reads the first frame); the chosen frame as core "
        "BOUNDING_BOXES (the canvas's own value type); the captions (one per line) and one MASK per instance of "
        "the chosen frame. Instances without an area (points) are left out of all of them."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = (BOUNDING_BOX, "STRING", "MASK", BOUNDING_BOXES)
    RETURN_NAMES = ("bounding_boxes", "captions", "masks", "boxes_with_metadata")
    FUNCTION = "convert"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "layout": (LAYOUT,),
            "frame": ("INT", {"default": 0, "min": 0, "max": 100000, "tooltip": "Frame for captions and masks."}),
            "round_to_pixels": ("BOOLEAN", {"default": True,
                                            "tooltip": "Whole-pixel boxes (floor/ceil outward), as crop nodes expect."}),
        }}

    def convert(self, layout, frame, round_to_pixels):
        frames = list(layout)
        if not 0 <= frame < len(frames):
            raise InstDiffError(f"frame {frame} requested but the layout has {len(frames)} frame(s)")
        boxes = interop.layout_to_bounding_boxes(frames, round_to_pixels=round_to_pixels)
        masks, captions = interop.layout_masks(frames[frame])
        if masks.shape[0] == 0:
            masks_t = torch.zeros((1, frames[frame].height, frames[frame].width), dtype=torch.float32)
        else:
            masks_t = torch.from_numpy(masks)
        return (boxes, "\n".join(captions), masks_t, interop.to_bounding_boxes(boxes[frame]))


NODE_CLASS_MAPPINGS = {
    "InstanceDiffusionLayoutFromDetections": LayoutFromDetections,
    "InstanceDiffusionLayoutToBoundingBoxes": LayoutToBoundingBoxes,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "InstanceDiffusionLayoutFromDetections": "Layout from detections",
    "InstanceDiffusionLayoutToBoundingBoxes": "Layout to Bounding Boxes",
}
