"""Layout Difference node: the MASK of what an edit from one layout to another touches, for a masked re-run."""
import torch

from ..instdiff_model.edit_mask import layout_difference
from ..instdiff_model.errors import InstDiffError

LAYOUT = "INSTANCE_LAYOUT"


def pick_frames(before: list, after: list, frame: int) -> list:
    """[(before frame, after frame), ...]: the one frame `frame`, or every frame for -1 (a one-frame layout is
    used for every frame of the other)."""
    count = max(len(before), len(after))
    if min(len(before), len(after)) != 1 and len(before) != len(after):
        raise InstDiffError(f"Layout Difference: 'before' has {len(before)} frames and 'after' {len(after)}; give "
                            "both the same number of frames (or one of them a single frame)")
    if frame >= count:
        raise InstDiffError(f"Layout Difference: frame {frame} does not exist, the layouts have {count} frame(s); "
                            f"use 0..{count - 1}, or -1 for a mask per frame")
    frames = range(count) if frame < 0 else [frame]
    return [(before[min(f, len(before) - 1)], after[min(f, len(after) - 1)]) for f in frames]


class LayoutDifference:
    DESCRIPTION = ("Compare two layouts and output the MASK of what the edit touches (old and new regions of every "
                   "changed instance), to re-generate only that part of the first image with Set Latent Noise Mask.")
    CATEGORY = "InstanceDiffusion/layout"
    RETURN_TYPES = ("MASK", "STRING")
    RETURN_NAMES = ("mask", "notes")
    OUTPUT_TOOLTIPS = ("1 where the edit acts (old and new regions of every changed instance), 0 where the first "
                       "image must stay; at the layout's size, one per frame compared; empty when nothing changed.",
                       "What changed, instance by instance, and how much of the image the mask covers.")
    SEARCH_ALIASES = ["edit mask", "layout diff", "compare layouts", "iterative generation", "inpaint instance",
                      "change one instance"]
    FUNCTION = "compare"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "before": (LAYOUT, {"tooltip": "The layout the first image was made with."}),
                "after": (LAYOUT, {"tooltip": "The edited layout (same width and height as 'before')."}),
                "grow": ("INT", {"default": 16, "min": 0, "max": 512, "step": 1,
                                 "tooltip": "Pixels added around every edited region, so the edit blends into its "
                                            "surroundings (the UNet's reach is wider than a box)."}),
            },
            "optional": {
                "feather": ("INT", {"default": 0, "min": 0, "max": 256, "step": 1,
                                    "tooltip": "Pixels over which the mask fades from 1 to 0 outside the grown "
                                               "region (0: a hard edge; a hard edge keeps everything outside it "
                                               "exactly)."}),
                "frame": ("INT", {"default": 0, "min": -1, "max": 4095, "step": 1,
                                  "tooltip": "Which frame of per-frame layouts to compare; -1: every frame "
                                             "(a mask per frame)."}),
            },
        }

    def compare(self, before, after, grow, feather=0, frame=0):
        masks, notes = [], []
        pairs = pick_frames(before, after, frame)
        for n, (b, a) in enumerate(pairs):
            mask, lines = layout_difference(b, a, grow, feather)
            masks.append(mask)
            prefix = f"frame {n}: " if len(pairs) > 1 else ""
            notes.extend(prefix + line for line in lines)
        return (torch.stack(masks), "\n".join(notes))


NODE_CLASS_MAPPINGS = {"InstanceDiffusionLayoutDifference": LayoutDifference}
NODE_DISPLAY_NAME_MAPPINGS = {"InstanceDiffusionLayoutDifference": "InstanceDiffusion Layout Difference (edit mask)"}
