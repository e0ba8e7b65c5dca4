"""Instance Tokenizer node: layout + CLIP-L + InstanceDiffusion -> the grounding tokens of the run (computed once)."""
import weakref

import comfy.model_management

from ..instdiff_model.errors import InstDiffError
from ..instdiff_model.grounding import build_grounding
from ..instdiff_model.tokenizer import DROP_CONFIGS, choose_drop_config
from . import host_api
from .clip_text import encode_captions

_POSITION_NETS = weakref.WeakKeyDictionary()


def load_position_net(instdiff):
    """The position net loaded by the host's model management on the load device (the MODEL's: the host's torch
    device), in the precision it was loaded in (fp32 by default); sampling never moves or casts it."""
    if instdiff not in _POSITION_NETS:
        _POSITION_NETS[instdiff] = host_api.managed_weights(
            instdiff.position_net, comfy.model_management.get_torch_device(), comfy.model_management.unet_offload_device())
    host_api.load_models([_POSITION_NETS[instdiff]])
    return instdiff.position_net


class InstanceTokenizerNode:
    DESCRIPTION = ("Turn the layout into InstanceDiffusion's 184 grounding tokens per frame (30 box, 30 point, "
                   "30 scribble, 30 polygon, 64 mask tokens), plus the null tokens of the unconditional pass. "
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
        grounding.instance_conds = encoded[0][1]
        return (grounding, drop)


NODE_CLASS_MAPPINGS = {"InstanceDiffusionTokenizer": InstanceTokenizerNode}
NODE_DISPLAY_NAME_MAPPINGS = {"InstanceDiffusionTokenizer": "InstanceDiffusion Instance Tokenizer"}
