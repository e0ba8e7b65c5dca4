"""Apply InstanceDiffusion node: a clone of the MODEL with fusers, ScaleU and (optionally) instance-masked attention."""
from ..instdiff_model.constants import CONTEXT_DIM
from ..instdiff_model.errors import InstDiffError
from . import host_api
from .patch import apply_patches

TRANSFORMER_DEPTH = [1, 1, 1, 1, 1, 1, 0, 0]


def check_sd15(model, instdiff) -> None:
    """Refuse anything that is not an SD1.5-architecture UNet whose widths match the fusers."""
    family, unet = host_api.unet_config(model)
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
    DESCRIPTION = ("Patch an SD1.5 MODEL with InstanceDiffusion (fusers, ScaleU, optional instance-masked attention) so "
                   "it places each instance where the layout draws it; the input MODEL stays unchanged.")
    SEARCH_ALIASES = ["instancediffusion", "instance diffusion", "gligen", "regional prompt", "layout", "bbox",
                      "grounding", "fuser", "scaleu", "apply"]
    OUTPUT_TOOLTIPS = ("A patched clone of the MODEL; sample it with InstanceDiffusion KSampler (or any KSampler).",)
    CATEGORY = "InstanceDiffusion"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        frac = {"default": 0.8, "min": 0.0, "max": 1.0, "step": 0.01}
        return {"required": {
            "model": ("MODEL", {"tooltip": "An SD1.5 model (or SD1.5 fine-tune, LoRAs applied before this node)."}),
            "instancediffusion": ("INSTANCEDIFFUSION", {"tooltip": "The weights from Load InstanceDiffusion."}),
            "instance_conditioning": ("INSTANCE_CONDITIONING", {"tooltip": "From InstanceDiffusion Instance Tokenizer."}),
            "grounding_full": ("FLOAT", dict(frac, tooltip=(
                "Fraction of the sampling (from the start) with the layout at full strength. 0.8 (official "
                "demos): instances sit firmly where drawn; 0.3: only the rough placement is set and the image "
                "gets more freedom and detail; 1.0: strictest placement, can look stiff; 0: layout off."))),
            "grounding_decay": ("FLOAT", dict(frac, default=0.0, tooltip=(
                "Fraction after grounding_full over which the layout fades out linearly (0 = switch off at once, "
                "official). 0.1-0.2 softens the hand-over at the cost of a little placement accuracy."))),
            "scaleu": ("BOOLEAN", {"default": True, "tooltip": (
                "ScaleU: learned rescaling of the UNet's skip features, trained with the fusers (on = official). "
                "Off only to compare.")}),
            "masked_attention": ("BOOLEAN", {"default": False, "tooltip": (
                "Instance-masked attention: each image region attends only to its own instance's tokens. Helps "
                "when colours or attributes leak between instances; a little slower. Off in the official release.")}),
        }, "optional": {
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3.0, "step": 0.05, "tooltip": (
                "Scales what the fusers add, on top of the gate schedule: 1 = the official model; lower loosens the "
                "layout, 1.2-1.5 enforces it harder (too high breaks the image); 0 turns the fusers off, ScaleU "
                "alone stays. Per-instance weights scale it further in each instance's region.")}),
        }}

    def apply(self, model, instancediffusion, instance_conditioning, grounding_full, grounding_decay, scaleu,
              masked_attention, strength=1.0):
        check_sd15(model, instancediffusion)
        return (apply_patches(model, instancediffusion, instance_conditioning, grounding_full, grounding_decay,
                              scaleu, masked_attention, strength=strength),)


NODE_CLASS_MAPPINGS = {"ApplyInstanceDiffusion": ApplyInstanceDiffusion}
NODE_DISPLAY_NAME_MAPPINGS = {"ApplyInstanceDiffusion": "Apply InstanceDiffusion"}
