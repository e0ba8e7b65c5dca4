"""Layout Preview node: every instance drawn in its colour (box, point, scribble, polygon, mask) with its caption."""
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..instdiff_model.geometry import instance_extent

PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4",
           "#469990", "#dcbeff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000", "#ffd8b1", "#000075",
           "#a9a9a9", "#ffe119"]


def instance_color(i: int, inst) -> tuple:
    hexcol = inst.color or PALETTE[i % len(PALETTE)]
    return tuple(int(hexcol[k:k + 2], 16) for k in (1, 3, 5))


def caption_font(width: int, height: int):
    """Pillow's own scalable default font (Aileron, Pillow >= 10.1) at a size that follows the image: about
    1/32 of the shorter side, at least 12 px; Pillow's fixed bitmap font where the scalable one is missing."""
    try:
        return ImageFont.load_default(size=max(12, round(min(width, height) / 32)))
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 (no size argument) or built without FreeType
        return ImageFont.load_default()


def text_color(col: tuple) -> tuple:
    """Black or white, whichever contrasts more with `col` (relative luminance as in WCAG 2)."""
    lin = [c / 255 / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in col]
    lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return (0, 0, 0) if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else (255, 255, 255)


def draw_layout(layout, background: Image.Image | None = None) -> Image.Image:
    """An RGB picture of the layout at its own size, over `background` (resized) or a grey canvas."""
    size = (layout.width, layout.height)
    base = background.convert("RGB").resize(size) if background is not None else Image.new("RGB", size, (48, 48, 48))
    overlay = Image.new("RGBA", size, (0, 0, 0, 0))
    fills = ImageDraw.Draw(overlay)
    draw = ImageDraw.Draw(base)
    font = caption_font(*size)
    width = max(2, round(min(size) / 170))
    labels = []
    for i, inst in enumerate(layout.instances):
        col = instance_color(i, inst)
        if inst.mask is not None:
            tint = Image.new("RGBA", size, col + (110,))
            overlay = Image.composite(tint, overlay, Image.fromarray(inst.mask.astype(np.uint8) * 255))
            fills = ImageDraw.Draw(overlay)
        if inst.polygon is not None:
            for ring in inst.polygon:
                fills.polygon([tuple(p) for p in ring], fill=col + (70,))
        anchor = None
        if inst.box is not None:
            x, y, w, h = inst.box
            draw.rectangle([x, y, x + w, y + h], outline=col, width=width)
            anchor = (x, y)
        for ring in inst.polygon or []:
            draw.line([tuple(p) for p in ring] + [tuple(ring[0])], fill=col, width=width)
            anchor = anchor or tuple(ring[0])
        for stroke in inst.scribble or []:
            draw.line([tuple(p) for p in stroke], fill=col, width=width * 2, joint="curve")
            anchor = anchor or tuple(stroke[0])
        if inst.point is not None:
            px, py = inst.point
            r = width * 3
            draw.ellipse([px - r, py - r, px + r, py + r], fill=col, outline=(255, 255, 255))
            anchor = anchor or (px + r, py - r)
        if anchor is None and inst.mask is not None:
            x0, y0 = instance_extent(inst)[:2]
            anchor = (int(x0), int(y0))
        labels.append((f"{i}: {inst.caption}", (anchor[0] + width, anchor[1] + width), col))
    if not layout.instances:
        return base
    picture = Image.alpha_composite(base.convert("RGBA"), overlay).convert("RGB")
    draw = ImageDraw.Draw(picture)
    pad = max(1, width // 2)
    for label, (tx, ty), col in labels:  # on top of every fill: an opaque backing box in the instance colour,
        x0, y0, x1, y1 = draw.textbbox((tx, ty), label, font=font)  # black or white text on it
        draw.rectangle((x0 - pad, y0 - pad, x1 + pad, y1 + pad), fill=col)
        draw.text((tx, ty), label, fill=text_color(col), font=font)
    return picture


class LayoutPreview:
    DESCRIPTION = "Draw the layout (every frame of a per-frame layout) for checking it before sampling; optional image underneath."
    CATEGORY = "InstanceDiffusion/layout"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "preview"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"layout": ("INSTANCE_LAYOUT",)}, "optional": {"image": ("IMAGE",)}}

    def preview(self, layout, image=None):
        pictures = []
        for n, frame in enumerate(layout):
            bg = None
            if image is not None:
                arr = image[min(n, image.shape[0] - 1)].cpu().numpy()
                bg = Image.fromarray((arr.clip(0, 1) * 255).astype(np.uint8))
            pic = draw_layout(frame, bg)
            pictures.append(torch.from_numpy(np.asarray(pic, dtype=np.float32) / 255.0))
        return (torch.stack(pictures),)


NODE_CLASS_MAPPINGS = {"InstanceDiffusionLayoutPreview": LayoutPreview}
NODE_DISPLAY_NAME_MAPPINGS = {"InstanceDiffusionLayoutPreview": "InstanceDiffusion Layout Preview"}
