"""Apply InstanceDiffusion node: a clone of the MODEL with fusers, ScaleU and (optionally) instance-masked attention."""
from ..instdiff_model.constants import CONTEXT_DIM
from ..instdiff_model.errors import InstDiffError
from .patch import apply_patches

TRANSFORMER_DEPTH = [1, 1, 1, 1, 1, 1, 0, 0]


def check_sd15(model, instdiff) -> None:
    """Refuse anything that is not an SD1.5-architecture UNet whose widths match the fusers."""
    config = getattr(model.model, "model_config", None)
    unet = getattr(config, "unet_config", {}) or {}
    family = type(config).__name__ if config is not None else type(model.model).__name__
    if (unet.get("context_dim") != CONTEXT_DIM or unet.get("adm_in_channels") is not None
            or list(unet.get("transformer_depth", [])) != TRANSFORMER_DEPTH or unet.get("use_linear_in_transformer")):
        raise InstDiffError(
            f"InstanceDiffusion works with SD1.5 models only, but this MODEL is {family}; "
            "load an SD1.5 checkpoint (or an SD1.5 fine-tune) for it")
    if unet.get("model_channels") != instdiff.model_channels:
        raise InstDiffError(
            f"the InstanceDiffusion weights are for a UNet with {instdiff.model_channels} base channels, "
            f"this MODEL has {unet.get('model_channels')}; use matching weights")


class ApplyInstanceDiffusion:
    DESCRIPTION = ("Patch an SD1.5 MODEL (a clone; the input MODEL stays unchanged) with InstanceDiffusion: a gated "
                   "fuser in each of the 16 transformer blocks (grounding tokens for the positive pass, null tokens "
                   "for the negative pass), ScaleU in the 12 output blocks, and optional instance-masked attention. "
                   "Gate schedule over sampling progress (the noise level, as core ComfyUI's start/end percent): "
                   "full strength for the first 'grounding_full' fraction, linear fade over 'grounding_decay', then "
                   "off. Official: the demo commands in InstanceDiffusion's README pass --alpha 0.8 (0.8 / 0, our "
                   "default); inference.py's own default is --alpha 0.75. The official code counts steps; the two "
                   "agree for the normal and ddim_uniform schedulers, karras grounds fewer steps (19 of 30 at 0.8).")
    CATEGORY = "InstanceDiffusion"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        frac = {"default": 0.8, "min": 0.0, "max": 1.0, "step": 0.01}
        return {"required": {
            "model": ("MODEL",), "instancediffusion": ("INSTANCEDIFFUSION",),
            "instance_conditioning": ("INSTANCE_CONDITIONING",),
            "grounding_full": ("FLOAT", frac), "grounding_decay": ("FLOAT", dict(frac, default=0.0)),
            "scaleu": ("BOOLEAN", {"default": True}), "masked_attention": ("BOOLEAN", {"default": False}),
        }, "optional": {
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3.0, "step": 0.05, "tooltip": (
                "Scales what the fusers add, on top of the gate schedule: 1 = the official model; lower loosens the "
                "layout, 1.2-1.5 enforces it harder (too high breaks the image); 0 turns the fusers off, ScaleU "
                "alone stays. Per-instance weights scale it further in each instance's region.")}),
        }}

    def apply(self, model, instancediffusion, instance_conditioning, grounding_full, grounding_decay, scaleu,
              masked_attention, strength=1.0):
        check_sd15(model, instancediffusion)
        return (apply_patches(model, instancediffusion, instance_conditioning.grounding, grounding_full,
                              grounding_decay, scaleu, masked_attention, captions=instance_conditioning.captions,
                              strength=strength),)


NODE_CLASS_MAPPINGS = {"ApplyInstanceDiffusion": ApplyInstanceDiffusion}
NODE_DISPLAY_NAME_MAPPINGS = {"ApplyInstanceDiffusion": "Apply InstanceDiffusion"}
