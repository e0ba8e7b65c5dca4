"""Instance Tokenizer node: layout + CLIP-L + InstanceDiffusion -> the run's grounding (computed once) and captions."""
from dataclasses import dataclass

from ..instdiff_model.errors import InstDiffError
from ..instdiff_model.grounding import Grounding, build_grounding
from ..instdiff_model.position_net import DROP_CONFIGS, choose_drop_config
from . import host_api
from .clip_text import encode_captions


def load_position_net(instdiff):
    """The position net loaded by the host's model management on the load device (the MODEL's: the host's torch
    device), in the precision it was loaded in (fp32 by default); sampling never moves or casts it."""
    net = instdiff.position_net
    host_api.load_models([host_api.managed_for(instdiff, "position_net", lambda: host_api.managed_weights(net))])
    return net


@dataclass(frozen=True, eq=False)
class InstanceConditioning:
    """The INSTANCE_CONDITIONING value, computed once: the run's grounding (per frame everything the fusers and the
    multi-instance sampler need), and per instance (of the first frame) its caption's text cond (1, L, 768), the
    multi-instance sampler's per-instance prompts. Apply's patch holds it as one value."""

    grounding: Grounding
    captions: tuple = ()


class InstanceTokenizerNode:
    DESCRIPTION = ("Turn the layout into InstanceDiffusion's grounding tokens (caption + location of every instance), "
                   "computed once per run, for Apply InstanceDiffusion.")
    SEARCH_ALIASES = ["instancediffusion", "instance tokenizer", "position net", "grounding", "layout", "bbox",
                      "regional prompt", "gligen"]
    OUTPUT_TOOLTIPS = ("The run's grounding tokens and per-instance captions: connect to Apply InstanceDiffusion.",
                       "Which official test config ran (box, point, scribble or sd15).")
    CATEGORY = "InstanceDiffusion"
    RETURN_TYPES = ("INSTANCE_CONDITIONING", "STRING")
    RETURN_NAMES = ("instance_conditioning", "config_used")
    FUNCTION = "tokenize"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP", {"tooltip": (
                                 "The SD1.5 checkpoint's own CLIP (CLIP-L): the position net was trained on its "
                                 "caption features. Take it from the checkpoint loader, not from a LoRA.")}),
                             "layout": ("INSTANCE_LAYOUT", {"tooltip": "The layout: Layout node, Add Instance chain, "
                                                                       "import or keyframes."}),
                             "instancediffusion": ("INSTANCEDIFFUSION", {"tooltip": "From Load InstanceDiffusion."}),
                             "config": (["auto"] + sorted(DROP_CONFIGS), {"tooltip": (
                                 "Which location formats reach the model (the official test configs). auto: "
                                 "scribbles -> scribble; masks or polygons -> sd15; boxes -> box; points -> point. "
                                 "Pick one by hand only to drop formats on purpose.")}),
                             "sample_seed": ("INT", {"default": 0, "min": 0, "max": 2**32 - 1, "tooltip": (
                                 "Seed of the official random choice of scribble/polygon sample points taken from "
                                 "masks; change it for a slightly different reading of the same shapes.")})}}

    def tokenize(self, clip, layout, instancediffusion, config, sample_seed):
        if not any(frame.instances for frame in layout):
            raise InstDiffError("the layout has no instances; add at least one (Add Instance nodes or the layout editor)")
        drop = choose_drop_config(layout[0]) if config == "auto" else config
        encoded = [encode_captions(clip, [inst.caption for inst in frame.instances]) for frame in layout]
        grounding = build_grounding(load_position_net(instancediffusion), layout, [e for e, _ in encoded], drop, sample_seed)
        return (InstanceConditioning(grounding, tuple(encoded[0][1])), drop)


NODE_CLASS_MAPPINGS = {"InstanceDiffusionTokenizer": InstanceTokenizerNode}
NODE_DISPLAY_NAME_MAPPINGS = {"InstanceDiffusionTokenizer": "InstanceDiffusion Instance Tokenizer"}
