"""The official inference box helpers (rescale_box, get_attmask_w_box): reference checks only, not the pack's path."""
import numpy as np


def rescale_box(box_xywh, width: float, height: float) -> list:
    """Official rescale_box: [x, y, w, h] pixels -> [x0, y0, x1, y1] normalised (no clamping)."""
    x, y, w, h = box_xywh
    return [x / width, y / height, (x + w) / width, (y + h) / height]


def attention_mask_from_box(box_xyxy, size: int) -> np.ndarray:
    """Official get_attmask_w_box for one box: (size, size) float32 with att[x1:x2, y1:y2] = 1 (x first axis),
    bounds np.round(coord * size) (round half to even)."""
    x1, y1, x2, y2 = (int(np.round(c * size)) for c in box_xyxy)
    att = np.zeros((size, size), dtype=np.float32)
    att[x1:x2, y1:y2] = 1
    return att
