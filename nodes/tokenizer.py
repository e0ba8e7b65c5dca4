"""Instance Tokenizer node: layout + CLIP-L + InstanceDiffusion -> the run's grounding (computed once) and captions."""
from dataclasses import dataclass

from ..instdiff_model.errors import InstDiffError
from ..instdiff_model.grounding import Grounding, build_grounding
from ..instdiff_model.tokenizer import DROP_CONFIGS, choose_drop_config
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
    """The INSTANCE_CONDITIONING value: the run's grounding, and per instance (of the first frame) its caption's
    text cond (1, L, 768), the multi-instance sampler's per-instance prompts."""

    grounding: Grounding
    captions: tuple = ()


class InstanceTokenizerNode:
    DESCRIPTION = ("Turn the layout into InstanceDiffusion's 184 grounding tokens per frame (30 box, 30 point, "
                   "30 scribble, 30 polygon, 64 mask tokens), plus the null tokens of the unconditional pass and each "
                   "instance caption's text conditioning (the multi-instance sampler's per-instance prompts). "
                   "'auto' picks the official test config from the formats present: scribbles -> scribble, masks or "
                   "polygons -> sd15 (official default, drops scribbles), boxes -> box, points only -> point. "
                   "The second output says which config ran. 'sample_seed' drives the official random sampling "
                   "of scribble/polygon points from masks.")
    CATEGORY = "InstanceDiffusion"
    RETURN_TYPES = ("INSTANCE_CONDITIONING", "STRING")
    RETURN_NAMES = ("instance_conditioning", "config_used")
    FUNCTION = "tokenize"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",), "layout": ("INSTANCE_LAYOUT",), "instancediffusion": ("INSTANCEDIFFUSION",),
                             "config": (["auto"] + sorted(DROP_CONFIGS),),
                             "sample_seed": ("INT", {"default": 0, "min": 0, "max": 2**32 - 1})}}

    def tokenize(self, clip, layout, instancediffusion, config, sample_seed):
        if not any(frame.instances for frame in layout):
            raise InstDiffError("the layout has no instances; add at least one (Add Instance nodes or the layout editor)")
        drop = choose_drop_config(layout[0]) if config == "auto" else config
        encoded = [encode_captions(clip, [inst.caption for inst in frame.instances]) for frame in layout]
        grounding = build_grounding(load_position_net(instancediffusion), layout, [e for e, _ in encoded], drop, sample_seed)
        return (InstanceConditioning(grounding, tuple(encoded[0][1])), drop)


NODE_CLASS_MAPPINGS = {"InstanceDiffusionTokenizer": InstanceTokenizerNode}
NODE_DISPLAY_NAME_MAPPINGS = {"InstanceDiffusionTokenizer": "InstanceDiffusion Instance Tokenizer"}
