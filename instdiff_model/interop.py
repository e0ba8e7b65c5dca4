"""Detections from other ComfyUI nodes <-> layout instances. Plain numpy/torch; no ComfyUI import."""
# Formats read (every coordinate in pixels of the image the detector saw unless the format says "norm"):
#
# * Core ``BOUNDING_BOX`` (ComfyUI 2026: RT-DETR Detect, SAM3 Detect, Create Bounding Boxes, Draw BBoxes):
#   a dict ``{"x", "y", "width", "height"}`` (top-left corner + size, pixels), a list of such dicts (one image)
#   or a list of lists of them (one inner list per image of a batch). Optional keys: ``"label"``, ``"score"``,
#   ``"metadata": {"desc", "text", "name", ...}``.
# * Core ``BOUNDING_BOXES`` (comfy_api ``io.BoundingBoxes``: the Create Bounding Boxes canvas state): a list of
#   ``{"x", "y", "width", "height", "metadata": {"type": "obj" | "text", "text", "desc", "palette": ["#rrggbb"]}}``
#   in pixels; ``desc`` describes the box, ``text`` is the lettering of a "text" box, ``palette`` its colours;
#   our own ``"weight"`` (the instance weight, written only when it is not 1) is read back from either.
# * Create Bounding Boxes ``elements`` (``ARRAY``, Ideogram prompt elements): ``[{"type", "bbox": [ymin, xmin, ymax,
#   xmax] on a 0..1000 grid of the canvas, "desc", "text" (text boxes), "color_palette"}]``.
# * Box lists (KJNodes ``BBOX``, Florence-2 ``JSON``, YOLO / ultralytics arrays, JSON text): a list of 4-number
#   boxes in the chosen ``box_format``; a list of dicts with ``"bbox"``/``"box"`` and ``"label"``; a Florence-2
#   result ``{"bboxes": [...], "labels": [...]}`` (or a per-image list of them); an (N, 4) array/tensor.
# * Impact Pack ``SEGS``: ``((h, w), [SEG(cropped_image, cropped_mask, confidence, crop_region, bbox, label,
#   control_net_wrapper), ...])`` with ``crop_region``/``bbox`` as ``[x1, y1, x2, y2]`` pixels of the (h, w) image
#   and ``cropped_mask`` an (y2-y1, x2-x1) array over ``crop_region``.
# * ComfyUI ``MASK``: (B, H, W) or (H, W) floats; each mask of the batch becomes one instance.
#
# Every problem raises InstDiffError naming the element (``"BOUNDING_BOX item 3: ..."``).
import math
import re
from dataclasses import dataclass

import numpy as np

from .errors import InstDiffError
from .geometry import clamp, resize_nearest
from .layout import Instance
from .locations import instance_extent, instance_mask
from .values import check_cost, decode_json, number, short

BOX_FORMATS = ("xyxy", "xywh", "cxcywh", "xyxy_norm", "xywh_norm", "cxcywh_norm")
BOX_FORMAT_HELP = {
    "xyxy": "[x1, y1, x2, y2] pixels (KJNodes BBOX, Florence-2, Impact bbox, ultralytics boxes.xyxy)",
    "xywh": "[x, y, width, height] pixels, top-left corner (COCO, ultralytics-free trackers)",
    "cxcywh": "[center x, center y, width, height] pixels (ultralytics boxes.xywh)",
    "xyxy_norm": "[x1, y1, x2, y2] as fractions 0..1 of the image (ultralytics boxes.xyxyn)",
    "xywh_norm": "[x, y, width, height] as fractions 0..1 of the image",
    "cxcywh_norm": "[center x, center y, width, height] as fractions 0..1 (YOLO txt labels, boxes.xywhn)",
}
_EPS = 1e-3


@dataclass
class Detection:
    """One imported element: where it came from, its label, box (x, y, w, h) and/or (H, W) bool mask, all in
    the pixels of `size` (w, h) -- None means "the source size the caller gives"."""

    source: str
    label: str = ""
    box: tuple | None = None
    mask: np.ndarray | None = None
    score: float | None = None
    size: tuple | None = None
    color: str | None = None
    weight: float = 1.0


def _num(v, where: str) -> float:
    """values.number, also taking 0-d arrays / tensors (detector outputs)."""
    return number(v.item() if hasattr(v, "item") and getattr(v, "ndim", 0) == 0 else v, where)


def _tolist(v):
    """Tensors / arrays -> nested Python lists; anything else unchanged."""
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _text(v) -> str:
    return v.strip() if isinstance(v, str) else ""


def _first_color(palette) -> str | None:
    """First usable colour of a canvas palette ("#rgb", "#rrggbb" or "#rrggbbaa") as "#rrggbb"; else None."""
    for c in palette if isinstance(palette, (list, tuple)) else []:
        h = c.strip().lower() if isinstance(c, str) else ""
        if re.fullmatch(r"#[0-9a-f]{3}", h):
            return "#" + "".join(ch * 2 for ch in h[1:])
        if re.fullmatch(r"#[0-9a-f]{6}([0-9a-f]{2})?", h):
            return h[:7]
    return None


# ----------------------------------------------------------------------------------------- core BOUNDING_BOX
def _pick_frame(frames: list, frame: int, what: str) -> list:
    if not frames:
        return []
    if not 0 <= frame < len(frames):
        raise InstDiffError(f"{what}: frame {frame} requested but the input has {len(frames)} frame(s) (0..{len(frames) - 1})")
    return frames[frame]


def from_bounding_box(value, frame: int = 0, what: str = "BOUNDING_BOX") -> list:
    """Core BOUNDING_BOX / BOUNDING_BOXES (dict | [dict] | [[dict]] per image) -> Detections (pixels; top-left
    x, y + size). Caption: metadata.desc, then metadata.text, then label; colour: metadata.palette[0]."""
    if value is None:
        return []
    if isinstance(value, str):
        value = decode_json(value, what, "{what}: not valid JSON ({exc})")
    if isinstance(value, dict):
        items = [value]
    elif isinstance(value, (list, tuple)):
        value = list(value)
        if value and all(isinstance(v, (list, tuple)) for v in value):
            items = list(_pick_frame(value, frame, what))
        else:
            items = value
    else:
        raise InstDiffError(f"{what}: expected a {{x, y, width, height}} dict or a list of them, got {short(value)}")
    out = []
    for i, d in enumerate(items):
        where = f"{what} item {i}"
        if not isinstance(d, dict):
            raise InstDiffError(f"{where}: expected a {{x, y, width, height}} dict, got {short(d)}")
        missing = [k for k in ("x", "y", "width", "height") if k not in d]
        if missing:
            raise InstDiffError(f"{where}: missing {missing}; core boxes are {{x, y, width, height}} in pixels")
        x, y, w, h = (_num(d[k], f"{where} '{k}'") for k in ("x", "y", "width", "height"))
        if w <= 0 or h <= 0:
            raise InstDiffError(f"{where}: zero or negative size ({w:g} x {h:g}); give a positive width and height")
        meta = d.get("metadata") if isinstance(d.get("metadata"), dict) else {}
        label = (_text(meta.get("desc")) or _text(meta.get("text")) or _text(d.get("label"))
                 or _text(meta.get("label")) or _text(meta.get("name")))
        score = d.get("score")
        out.append(Detection(where, label, (x, y, w, h),
                             score=_num(score, f"{where} 'score'") if score is not None else None,
                             color=_first_color(meta.get("palette")),
                             weight=_num(meta.get("weight", 1.0), f"{where} metadata 'weight'")))
    return out


def from_elements(value) -> list:
    """Create Bounding Boxes `elements` (Ideogram: bbox [ymin, xmin, ymax, xmax] on a 0..1000 grid) -> Detections
    in a 1000 x 1000 pixel space (scaled to the layout later). Caption: desc, then text."""
    what = "elements"
    if value is None:
        return []
    if isinstance(value, str) and not value.strip():
        return []
    value = decode_json(value, what)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise InstDiffError(f"{what}: expected Create Bounding Boxes elements (a list of {{type, bbox, desc}}), "
                            f"got {short(value)}")
    out = []
    for i, el in enumerate(value):
        where = f"{what} item {i}"
        if not isinstance(el, dict) or "bbox" not in el:
            raise InstDiffError(f"{where}: expected {{type, bbox: [ymin, xmin, ymax, xmax] (0..1000), desc}}, "
                                f"got {short(el)}")
        bbox = _tolist(el["bbox"])
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise InstDiffError(f"{where}: bbox must be [ymin, xmin, ymax, xmax] on the 0..1000 grid, got {short(bbox)}")
        y0, x0, y1, x1 = (_num(v, f"{where} bbox") for v in bbox)
        x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            raise InstDiffError(f"{where}: bbox {short(list(bbox))} (ymin, xmin, ymax, xmax) has no area; "
                                "draw the box larger on the canvas")
        label = _text(el.get("desc")) or _text(el.get("text"))
        out.append(Detection(where, label, (x0, y0, x1 - x0, y1 - y0), size=(1000, 1000),
                             color=_first_color(el.get("color_palette"))))
    return out


# ------------------------------------------------------------------------------------------------ box lists
def box_to_xywh(box, box_format: str, size: tuple, where: str) -> tuple:
    """One 4-number box in `box_format` -> (x, y, w, h) pixels of `size` (w, h)."""
    if box_format not in BOX_FORMATS:
        raise InstDiffError(f"box_format {box_format!r} unknown; use one of {list(BOX_FORMATS)}")
    box = _tolist(box)
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise InstDiffError(f"{where}: expected 4 numbers ({BOX_FORMAT_HELP[box_format]}), got {short(box)}")
    a, b, c, d = (_num(v, where) for v in box)
    if box_format.endswith("_norm"):
        a, c = a * size[0], c * size[0]
        b, d = b * size[1], d * size[1]
    kind = box_format.replace("_norm", "")
    if kind == "xyxy":
        x, y, w, h = a, b, c - a, d - b
    elif kind == "xywh":
        x, y, w, h = a, b, c, d
    else:
        x, y, w, h = a - c / 2, b - d / 2, c, d
    if w <= 0 or h <= 0:
        raise InstDiffError(
            f"{where}: {short(list(box))} has zero or negative size as {box_format} ({BOX_FORMAT_HELP[box_format]}); "
            "check box_format"
        )
    return (x, y, w, h)


def from_box_list(value, box_format: str, size: tuple, frame: int = 0, what: str = "boxes") -> list:
    """Detector box lists (see module doc) -> Detections in pixels of `size` (w, h)."""
    if value is None:
        return []
    if isinstance(value, str):
        if not value.strip():
            return []
        value = decode_json(value, what, "{what}: not valid JSON ({exc}); give a list of boxes")
    value = _tolist(value)
    labels = []
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) and "bboxes" in v for v in value):
        value = _pick_frame(list(value), frame, what)  # Florence-2: one result dict per image
    if isinstance(value, dict):
        if "bboxes" not in value:
            raise InstDiffError(f"{what}: a dict needs 'bboxes' (and optionally 'labels'), got keys {sorted(value)}")
        labels = _tolist(value.get("labels") or [])
        value = _tolist(value["bboxes"])
    if not isinstance(value, (list, tuple)):
        raise InstDiffError(f"{what}: expected a list of boxes, got {short(value)}")
    value = list(value)
    if len(value) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        value = [value]  # one bare box
    if value and all(isinstance(v, (list, tuple)) and v and isinstance(v[0], (list, tuple)) for v in value):
        value = list(_pick_frame(value, frame, what))  # per-image lists of boxes
    out = []
    for i, item in enumerate(value):
        where = f"{what} item {i}"
        label = _text(labels[i]) if i < len(labels) else ""
        score = None
        if isinstance(item, dict):
            key = next((k for k in ("bbox", "box", "xyxy", "bounding_box") if k in item), None)
            if key is None:
                raise InstDiffError(f"{where}: a dict needs 'bbox' or 'box', got keys {sorted(item)}")
            label = _text(item.get("label")) or _text(item.get("caption")) or _text(item.get("name")) or label
            score = item.get("score", item.get("confidence"))
            score = _num(score, f"{where} score") if score is not None else None
            item = item[key]
        out.append(Detection(where, label, box_to_xywh(item, box_format, size, where), score=score))
    return out


# --------------------------------------------------------------------------------------------- Impact SEGS
def _seg_field(seg, name: str, index: int):
    if hasattr(seg, name):
        return getattr(seg, name)
    if isinstance(seg, (list, tuple)) and len(seg) > index:
        return seg[index]
    return None


def _xyxy4(v, where: str) -> tuple:
    v = _tolist(v)
    if not isinstance(v, (list, tuple)) or len(v) != 4:
        raise InstDiffError(f"{where}: expected [x1, y1, x2, y2] pixels, got {short(v)}")
    return tuple(_num(c, where) for c in v)


def from_segs(segs, use_masks: bool = True, threshold: float = 0.5) -> list:
    """Impact Pack SEGS -> Detections: box from `bbox`, mask = `cropped_mask` pasted at `crop_region`, in the
    SEGS image size."""
    what = "SEGS"
    if segs is None:
        return []
    if not (isinstance(segs, (list, tuple)) and len(segs) == 2 and isinstance(segs[1], (list, tuple))):
        raise InstDiffError(f"{what}: expected ((height, width), [SEG, ...]) from Impact Pack, got {short(segs)}")
    shape = _tolist(segs[0])
    if not (isinstance(shape, (list, tuple)) and len(shape) >= 2):
        raise InstDiffError(f"{what}: first element must be the image (height, width), got {short(shape)}")
    h, w = int(_num(shape[0], f"{what} height")), int(_num(shape[1], f"{what} width"))
    if h <= 0 or w <= 0:
        raise InstDiffError(f"{what}: image size {h}x{w} (HxW) is empty")
    if use_masks:
        check_cost(0, h * w * len(segs[1]), f"{what} ({len(segs[1])} masks of {h}x{w})")
    out = []
    for i, seg in enumerate(segs[1]):
        where = f"{what} item {i}"
        label = _text(_seg_field(seg, "label", 5))
        conf = _tolist(_seg_field(seg, "confidence", 2))
        if isinstance(conf, list):
            conf = conf[0] if len(conf) == 1 else None
        score = _num(conf, f"{where} confidence") if conf is not None else None
        bbox = _seg_field(seg, "bbox", 4)
        crop = _seg_field(seg, "crop_region", 3)
        if bbox is None and crop is None:
            raise InstDiffError(f"{where}: has neither bbox nor crop_region; is this an Impact Pack SEG?")
        x1, y1, x2, y2 = _xyxy4(bbox if bbox is not None else crop, f"{where} bbox")
        if x2 <= x1 or y2 <= y1:
            raise InstDiffError(f"{where} bbox: [{x1:g}, {y1:g}, {x2:g}, {y2:g}] (x1, y1, x2, y2) has no area")
        mask = None
        cm = _seg_field(seg, "cropped_mask", 1)
        if use_masks and cm is not None and crop is not None:
            cm = cm.detach().cpu().numpy() if hasattr(cm, "detach") else np.asarray(cm)
            cm = np.squeeze(cm)
            cx1, cy1, cx2, cy2 = (int(round(c)) for c in _xyxy4(crop, f"{where} crop_region"))
            if cm.ndim != 2 or cm.shape != (cy2 - cy1, cx2 - cx1):
                raise InstDiffError(
                    f"{where}: cropped_mask has shape {tuple(cm.shape)} but crop_region "
                    f"[{cx1}, {cy1}, {cx2}, {cy2}] is {cy2 - cy1}x{cx2 - cx1} (HxW)"
                )
            full = np.zeros((h, w), dtype=bool)
            sy0, sx0 = max(0, -cy1), max(0, -cx1)
            ty0, tx0, ty1, tx1 = max(cy1, 0), max(cx1, 0), min(cy2, h), min(cx2, w)
            if ty1 > ty0 and tx1 > tx0:
                full[ty0:ty1, tx0:tx1] = cm[sy0:sy0 + ty1 - ty0, sx0:sx0 + tx1 - tx0] > threshold
            mask = full if full.any() else None
        out.append(Detection(where, label, (x1, y1, x2 - x1, y2 - y1), mask=mask, score=score, size=(w, h)))
    return out


# --------------------------------------------------------------------------------------------------- MASK
def from_masks(masks, threshold: float = 0.5) -> list:
    """MASK (B, H, W) or (H, W) -> one Detection per mask (pixels above `threshold`); empty masks are refused."""
    if masks is None:
        return []
    m = masks.detach().float().cpu().numpy() if hasattr(masks, "detach") else np.asarray(masks, dtype=np.float32)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise InstDiffError(f"MASK: expected a (batch, height, width) mask, got shape {tuple(m.shape)}")
    out = []
    for i in range(m.shape[0]):
        where = f"MASK item {i}"
        b = m[i] > threshold
        if not b.any():
            raise InstDiffError(f"{where}: empty (nothing above threshold {threshold:g}); remove it or lower the threshold")
        out.append(Detection(where, "", mask=b, size=(m.shape[2], m.shape[1])))
    return out


# -------------------------------------------------------------------------------------- detections -> layout
def parse_captions(text: str) -> list:
    """Multiline captions -> one entry per line ('' keeps the detected label); trailing blank lines dropped."""
    lines = [ln.strip() for ln in (text or "").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def scored(detections: list, min_score: float, notes: list) -> list:
    """The detections that are kept: unscored ones and those scoring at least `min_score`; each dropped one is noted."""
    kept = []
    for det in detections:
        if det.score is not None and det.score < min_score:
            notes.append(f"{det.source}: dropped, score {det.score:.3g} < min_score {min_score:g}")
            continue
        kept.append(det)
    return kept


def detections_to_instances(detections: list, width: int, height: int, *, source_size: tuple | None = None,
                            captions: str = "", out_of_image: str = "clamp", min_score: float | None = 0.0,
                            notes: list | None = None) -> list:
    """Detections -> Instances in the width x height layout, instance i from the i-th detection kept.

    Coordinates are scaled from each detection's own size (SEGS, MASK) or `source_size` (w, h) (box inputs;
    default: the layout size) to the layout. Detections scoring below `min_score` are dropped (None: `detections`
    are already the kept ones, see `scored`). Caption line i (after dropping) overrides the label of detection i.
    Boxes reaching outside the layout are clamped (out_of_image="clamp", listed in `notes`) or refused ("error").
    """
    notes = notes if notes is not None else []
    if out_of_image not in ("clamp", "error"):
        raise InstDiffError(f"out_of_image must be 'clamp' or 'error', got {out_of_image!r}")
    kept = detections if min_score is None else scored(detections, min_score, notes)
    check_cost(0, sum(det.mask is not None for det in kept) * width * height, "the imported detections")
    lines = parse_captions(captions)
    if len(lines) > len(kept):
        raise InstDiffError(
            f"captions has {len(lines)} lines but {len(kept)} instance(s) were imported; "
            "write one line per instance (BOUNDING_BOX, BOUNDING_BOXES, elements, boxes, SEGS, then MASK order)"
        )
    out = []
    for i, det in enumerate(kept):
        caption = (lines[i] if i < len(lines) else "") or det.label
        if not caption:
            raise InstDiffError(
                f"{det.source}: no caption (the detection has no label); write one on line {i + 1} of captions"
            )
        sw, sh = det.size or source_size or (width, height)
        sx, sy = width / sw, height / sh
        box = None
        if det.box is not None:
            x, y, w, h = det.box
            x0, y0, x1, y1 = x * sx, y * sy, (x + w) * sx, (y + h) * sy
            c0, d0, c1, d1 = clamp(x0, width), clamp(y0, height), clamp(x1, width), clamp(y1, height)
            if c1 - c0 <= 0 or d1 - d0 <= 0:
                raise InstDiffError(
                    f"{det.source}: box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] (x1, y1, x2, y2 in layout pixels) lies "
                    f"outside the {width}x{height} layout; check the source size / box_format"
                )
            if max(abs(c0 - x0), abs(d0 - y0), abs(c1 - x1), abs(d1 - y1)) > _EPS:
                if out_of_image == "error":
                    raise InstDiffError(
                        f"{det.source}: box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] (x1, y1, x2, y2 in layout pixels) "
                        f"extends outside the {width}x{height} layout; move it inside or set out_of_image to clamp"
                    )
                notes.append(f"{det.source}: box clamped to the {width}x{height} layout")
            box = (c0, d0, c1 - c0, d1 - d0)
        mask = None
        if det.mask is not None:
            mask = resize_nearest(det.mask, height, width)
            if not mask.any():
                raise InstDiffError(f"{det.source}: mask vanishes when resized to the {width}x{height} layout")
        out.append(Instance(caption=caption, box=box, mask=mask, color=det.color, weight=det.weight))
    return out


# -------------------------------------------------------------------------------- layout -> core BOUNDING_BOX
def _box_metadata(inst) -> dict:
    """Create Bounding Boxes metadata: our caption as `desc`; `palette` (the box's colours, drawn by the canvas
    and sent to Ideogram as color_palette) only holds the instance's own colour when one was set; `weight` only
    when the instance's weight is not 1 (other nodes ignore the key, our import reads it back)."""
    meta = {"type": "obj", "text": "", "desc": inst.caption, "palette": [inst.color] if inst.color else []}
    return meta if inst.weight == 1 else dict(meta, weight=inst.weight)


def layout_to_bounding_boxes(layouts: list, round_to_pixels: bool = True) -> list:
    """Layout frames -> core BOUNDING_BOX: one list per frame of {x, y, width, height, label, metadata} in
    pixels (metadata as Create Bounding Boxes reads it, see _box_metadata). Instances without an area (points,
    degenerate strokes) are left out."""
    frames = []
    for lay in layouts:
        boxes = []
        for inst in lay.instances:
            ext = instance_extent(inst)
            if ext is None:
                continue
            x0, y0, x1, y1 = ext
            if round_to_pixels:
                x0, y0 = int(math.floor(x0)), int(math.floor(y0))
                x1, y1 = int(min(math.ceil(x1), lay.width)), int(min(math.ceil(y1), lay.height))
            if x1 - x0 <= 0 or y1 - y0 <= 0:
                continue
            boxes.append({"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0, "label": inst.caption,
                          "metadata": _box_metadata(inst)})
        frames.append(boxes)
    return frames


def to_bounding_boxes(frame_boxes: list) -> list:
    """One frame of layout_to_bounding_boxes -> core BOUNDING_BOXES (list[BoundingBoxWithMetadata]: x, y,
    width, height, metadata only)."""
    return [{k: b[k] for k in ("x", "y", "width", "height", "metadata")} for b in frame_boxes]


def layout_masks(layout) -> tuple:
    """One (H, W) float mask per instance with an area: its mask, rasterised polygon, else its filled box /
    extent. Returns (masks (N, H, W) float32, captions list)."""
    masks, captions = [], []
    for inst in layout.instances:
        m = instance_mask(inst, layout.height, layout.width)
        if m is None:
            ext = instance_extent(inst)
            if ext is None:
                continue
            m = np.zeros((layout.height, layout.width), dtype=bool)
            x0, y0 = int(math.floor(ext[0])), int(math.floor(ext[1]))
            x1, y1 = int(math.ceil(ext[2])), int(math.ceil(ext[3]))
            m[y0:y1, x0:x1] = True
        if not m.any():
            continue
        masks.append(m.astype(np.float32))
        captions.append(inst.caption)
    if not masks:
        return np.zeros((0, layout.height, layout.width), dtype=np.float32), []
    return np.stack(masks), captions
