"""Interop nodes: detections / masks from other ComfyUI nodes -> our layout, and our layout -> core boxes."""
# Pure conversion logic lives in instdiff_model/interop.py; this module is the ComfyUI glue.
import torch

from ..instdiff_model import interop
from ..instdiff_model.constants import MAX_INSTANCES
from ..instdiff_model.errors import InstDiffError
from ..instdiff_model.layout import Layout
from ..instdiff_model.values import check_cost

CATEGORY = "InstanceDiffusion/layout"
LAYOUT = "INSTANCE_LAYOUT"
BOUNDING_BOX = "BOUNDING_BOX"  # ComfyUI core (comfy_api io.BoundingBox): {x, y, width, height} pixels
# Core (comfy_api io.BoundingBoxes, the Create Bounding Boxes canvas state): [{x, y, width, height, metadata}].
# Plain type strings, so the 2024 host (which knows neither) still loads the nodes.
BOUNDING_BOXES = "BOUNDING_BOXES"


class LayoutFromDetections:
    DESCRIPTION = ("Turn other nodes' detections (core boxes, Create Bounding Boxes, KJNodes BBOX, Florence-2, "
                   "Impact Pack SEGS, masks) into InstanceDiffusion instances, captioned from their labels. Connect "
                   "the result to the Layout node's seed_layout to edit it in the editor.")
    SEARCH_ALIASES = ["instancediffusion", "detections", "bbox", "bounding boxes", "segs", "florence2",
                      "sam", "detector", "boxes to layout", "regional prompt", "layout"]
    OUTPUT_TOOLTIPS = ("The layout with the imported instances appended (in import order).",
                       "What was changed while importing (clamped boxes, dropped low scores), one note per line.")
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
                "height": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8,
                                   "tooltip": "Size of a new layout (ignored when 'layout' is connected)."}),
                "caption": ("STRING", {"default": "", "multiline": True,
                                       "tooltip": "Global caption (replaces the connected layout's when not empty)."}),
                "captions": ("STRING", {"default": "", "multiline": True, "dynamicPrompts": False,
                                        "tooltip": "One caption per imported instance, in import order; a blank "
                                                   "line keeps the detected label."}),
                "box_format": (list(interop.BOX_FORMATS), {"default": "xyxy",
                                                           "tooltip": "How 'bboxes' / 'florence2_data' / "
                                                                      "'boxes_json' boxes are written."}),
                "out_of_image": (["clamp", "error"], {"default": "clamp", "tooltip": (
                    "Boxes reaching outside the image: clamp them to it (noted in 'notes') or stop with an error.")}),
                "min_score": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": (
                    "Drop detections scored below this (where the detector gives scores); 0.3-0.5 removes weak "
                    "ones, 0 keeps all.")}),
                "mask_threshold": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01,
                                             "tooltip": "SEGS / mask values above this are the instance."}),
                "segs_masks": ("BOOLEAN", {"default": True, "tooltip": "Use SEGS masks (else boxes only)."}),
                "frame": ("INT", {"default": 0, "min": 0, "max": 100000,
                                  "tooltip": "Which image's detections to take from per-image box lists."}),
                "boxes_json": ("STRING", {"default": "", "multiline": True, "dynamicPrompts": False,
                                          "tooltip": "Boxes as JSON text: [[...], ...], [{\"bbox\": [...], "
                                                     "\"label\": ...}], or {\"bboxes\": [...], \"labels\": [...]}."}),
            },
            "optional": {
                "layout": (LAYOUT, {"tooltip": "A layout to append to (else a new width x height one)."}),
                "source_image": ("IMAGE", {"tooltip": "The image the boxes were detected on (its size is the "
                                                      "pixel space of the box inputs)."}),
                "bounding_boxes": (BOUNDING_BOX, {"forceInput": True, "tooltip": (
                    "Core BOUNDING_BOX boxes (RT-DETR / SAM3 Detect, Create Bounding Boxes); no captions: write "
                    "them in 'captions'.")}),
                "boxes_with_metadata": (BOUNDING_BOXES, {"forceInput": True,
                                                         "tooltip": "Core BOUNDING_BOXES: captions from "
                                                                    "metadata.desc, then metadata.text."}),
                "elements": ("ARRAY", {"tooltip": "Create Bounding Boxes 'elements' output: its boxes with "
                                                  "their descriptions (bbox on the canvas's 0..1000 grid)."}),
                "bboxes": ("BBOX", {"tooltip": "KJNodes / Florence-2 BBOX box lists, read with box_format."}),
                "florence2_data": ("JSON", {"tooltip": "Florence-2 'data' output: boxes with their labels."}),
                "segs": ("SEGS", {"tooltip": "Impact Pack SEGS: box + mask + label per detection."}),
                "masks": ("MASK", {"tooltip": "A MASK batch: one instance per mask (write captions in 'captions')."}),
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
        masked = sum(d.mask is not None for d in dets)
        check_cost(0, sum(masked * f.width * f.height for f in frames), "the imported detections over all frames")
        notes = []
        kept = interop.scored(dets, min_score, notes)  # imported instance k of every frame is kept[k]
        out = []
        for f in frames:
            instances = interop.detections_to_instances(
                kept, f.width, f.height, source_size=src, captions=captions, out_of_image=out_of_image,
                min_score=None, notes=notes if not out else None)
            base = len(f.instances)
            if base + len(instances) > MAX_INSTANCES:
                raise InstDiffError(
                    f"InstanceDiffusion supports at most {MAX_INSTANCES} instances; the layout has {base} and "
                    f"{len(instances)} were imported; raise min_score or pass fewer detections")
            try:
                out.append(Layout(width=f.width, height=f.height, caption=caption.strip() or f.caption,
                                  instances=list(f.instances) + instances))
            except InstDiffError as exc:
                if exc.index is None or exc.index < base:
                    raise
                raise exc.relabeled(kept[exc.index - base].source) from None
        return (out, "\n".join(notes))


class LayoutToBoundingBoxes:
    DESCRIPTION = ("Our layout as ComfyUI core boxes (BOUNDING_BOX, BOUNDING_BOXES with captions), captions and one "
                   "MASK per instance, for core nodes such as SAM3 Detect, crops or Create Bounding Boxes' 'bboxes'.")
    SEARCH_ALIASES = ["instancediffusion", "layout to bbox", "bounding boxes", "export boxes", "layout masks",
                      "bbox", "segs", "regional masks"]
    OUTPUT_TOOLTIPS = ("Core BOUNDING_BOX: per frame a list of {x, y, width, height} pixel boxes, label = caption.",
                       "The instances' captions of the chosen frame, one per line.",
                       "One MASK per instance of the chosen frame (an empty mask if none has an area).",
                       "Core BOUNDING_BOXES of the chosen frame (the Create Bounding Boxes canvas's value).")
    CATEGORY = CATEGORY
    RETURN_TYPES = (BOUNDING_BOX, "STRING", "MASK", BOUNDING_BOXES)
    RETURN_NAMES = ("bounding_boxes", "captions", "masks", "boxes_with_metadata")
    FUNCTION = "convert"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "layout": (LAYOUT, {"tooltip": "The layout to convert; points (no area) are left out."}),
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
