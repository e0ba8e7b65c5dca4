"""Layout Preview node: every instance drawn in its colour (box, point, scribble, polygon, mask) with its caption."""
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..instdiff_model.locations import draw_instance

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


class Painter:
    """The painter locations.draw_instance draws with, on PIL: translucent fills on an RGBA overlay, outlines on
    the picture, in `color` (set per instance), lines `line_width` pixels wide."""

    def __init__(self, picture: Image.Image, line_width: int):
        self.overlay = Image.new("RGBA", picture.size, (0, 0, 0, 0))
        self.fills = ImageDraw.Draw(self.overlay)
        self.draw = ImageDraw.Draw(picture)
        self.line_width = line_width
        self.color = (0, 0, 0)

    def tint(self, mask):
        layer = Image.new("RGBA", self.overlay.size, self.color + (110,))
        self.overlay = Image.composite(layer, self.overlay, Image.fromarray(mask.astype(np.uint8) * 255))
        self.fills = ImageDraw.Draw(self.overlay)

    def polygon(self, ring):
        self.fills.polygon([tuple(p) for p in ring], fill=self.color + (70,))
        self.draw.line([tuple(p) for p in ring] + [tuple(ring[0])], fill=self.color, width=self.line_width)

    def rect(self, x0, y0, x1, y1):
        self.draw.rectangle([x0, y0, x1, y1], outline=self.color, width=self.line_width)

    def stroke(self, points):
        self.draw.line([tuple(p) for p in points], fill=self.color, width=self.line_width * 2, joint="curve")

    def dot(self, x, y) -> tuple:
        r = self.line_width * 3
        self.draw.ellipse([x - r, y - r, x + r, y + r], fill=self.color, outline=(255, 255, 255))
        return (x + r, y - r)


def draw_layout(layout, background: Image.Image | None = None) -> Image.Image:
    """An RGB picture of the layout at its own size, over `background` (resized) or a grey canvas."""
    size = (layout.width, layout.height)
    base = background.convert("RGB").resize(size) if background is not None else Image.new("RGB", size, (48, 48, 48))
    font = caption_font(*size)
    line_width = max(2, round(min(size) / 170))
    paint = Painter(base, line_width)
    labels = []
    for i, inst in enumerate(layout.instances):
        paint.color = col = instance_color(i, inst)
        anchor = draw_instance(inst, paint)
        weight = "" if inst.weight == 1 else f" (x{inst.weight:g})"  # the instance's weight, when it steers
        labels.append((f"{i}: {inst.caption}{weight}", (anchor[0] + line_width, anchor[1] + line_width), col))
    if not layout.instances:
        return base
    picture = Image.alpha_composite(base.convert("RGBA"), paint.overlay).convert("RGB")
    draw = ImageDraw.Draw(picture)
    pad = max(1, line_width // 2)
    for label, (tx, ty), col in labels:  # on top of every fill: an opaque backing box in the instance colour,
        x0, y0, x1, y1 = draw.textbbox((tx, ty), label, font=font)  # black or white text on it
        draw.rectangle((x0 - pad, y0 - pad, x1 + pad, y1 + pad), fill=col)
        draw.text((tx, ty), label, fill=text_color(col), font=font)
    return picture


EDIT_COLOR = (255, 0, 200)


def draw_mask(picture: Image.Image, mask: torch.Tensor) -> Image.Image:
    """`picture` with `mask` (H, W in [0, 1], resized to the picture) drawn over it: diagonal hatching in EDIT_COLOR,
    denser where the mask is higher, so the instances under it stay visible."""
    m = np.asarray(Image.fromarray((mask.float().cpu().numpy().clip(0, 1) * 255).astype(np.uint8)).resize(
        picture.size, Image.BILINEAR), dtype=np.float32) / 255
    yy, xx = np.mgrid[:m.shape[0], :m.shape[1]]
    hatch = ((xx + yy) // max(2, min(picture.size) // 64)) % 2 == 0
    alpha = (m * np.where(hatch, 0.6, 0.25))[..., None]
    out = np.asarray(picture, dtype=np.float32) * (1 - alpha) + np.array(EDIT_COLOR, np.float32) * alpha
    return Image.fromarray(out.round().astype(np.uint8))


class LayoutPreview:
    DESCRIPTION = ("Draw the layout (every frame of a per-frame layout), over an image if one is connected, to check it; "
                   "an optional edit mask (Layout Difference) is hatched over it.")
    SEARCH_ALIASES = ["instancediffusion", "layout preview", "draw boxes", "bbox", "visualize layout", "overlay"]
    OUTPUT_TOOLTIPS = ("One picture per layout frame: each instance in its colour with its number and caption.",)
    CATEGORY = "InstanceDiffusion/layout"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "preview"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"layout": ("INSTANCE_LAYOUT", {"tooltip": "The layout to draw."})},
                "optional": {"image": ("IMAGE", {"tooltip": (
                    "Drawn underneath, resized to the layout (e.g. the generated image, to check placement); "
                    "frame n over image n. Without it: a grey canvas.")}),
                    "mask": ("MASK", {"tooltip": "An edit mask (e.g. from Layout Difference), shown as a hatched overlay."})}}

    def preview(self, layout, image=None, mask=None):
        pictures = []
        masks = None if mask is None else mask.reshape(-1, *mask.shape[-2:])
        for n, frame in enumerate(layout):
            bg = None
            if image is not None:
                arr = image[min(n, image.shape[0] - 1)].cpu().numpy()
                bg = Image.fromarray((arr.clip(0, 1) * 255).astype(np.uint8))
            pic = draw_layout(frame, bg)
            if masks is not None:
                pic = draw_mask(pic, masks[min(n, masks.shape[0] - 1)])
            pictures.append(torch.from_numpy(np.asarray(pic, dtype=np.float32) / 255.0))
        return (torch.stack(pictures),)


NODE_CLASS_MAPPINGS = {"InstanceDiffusionLayoutPreview": LayoutPreview}
NODE_DISPLAY_NAME_MAPPINGS = {"InstanceDiffusionLayoutPreview": "InstanceDiffusion Layout Preview"}
