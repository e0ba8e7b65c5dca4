"""Test-only nodes (registered when INSTDIFF_TEST_NODES=1): seeded random tiny SD1.5 and InstanceDiffusion stand-ins."""
from ..instdiff_model.model import InstanceDiffusionModel
from . import random_models

_TINY = {}


class RandomTinySD15:
    DESCRIPTION = "TEST ONLY: an SD1.5-config UNet with a small base width, full-size random CLIP-L and a random TAESD VAE."
    CATEGORY = "InstanceDiffusion/testing"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
                             "model_channels": ("INT", {"default": 32, "min": 32, "max": 320, "step": 32})}}

    def build(self, seed, model_channels):
        return (random_models.random_sd15_model(seed, model_channels), random_models.random_clip(seed),
                random_models.random_vae(seed))


class RandomInstanceDiffusion:
    DESCRIPTION = "TEST ONLY: InstanceDiffusion weights from the reference weight formula at a chosen UNet width."
    CATEGORY = "InstanceDiffusion/testing"
    RETURN_TYPES = ("INSTANCEDIFFUSION",)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"salt": ("STRING", {"default": "tiny"}),
                             "model_channels": ("INT", {"default": 32, "min": 32, "max": 320, "step": 32})}}

    def build(self, salt, model_channels):
        key = (salt, model_channels)
        if key not in _TINY:  # the position net alone holds 160M values: build once per server
            _TINY[key] = InstanceDiffusionModel.from_formula(salt, model_channels)
        return (_TINY[key],)


class LatentMean:
    DESCRIPTION = "TEST ONLY: the plain mean of up to 11 latents (a slow, node-by-node MIS reference)."
    CATEGORY = "InstanceDiffusion/testing"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "mean"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"latent_0": ("LATENT",)},
                "optional": {f"latent_{i}": ("LATENT",) for i in range(1, 11)}}

    def mean(self, **latents):
        stack = [latents[k]["samples"] for k in sorted(latents, key=lambda k: int(k.split("_")[1]))]
        return (dict(latents["latent_0"], samples=sum(stack) / len(stack)),)


NODE_CLASS_MAPPINGS = {"InstDiffTestRandomTinySD15": RandomTinySD15, "InstDiffTestLatentMean": LatentMean,
                       "InstDiffTestRandomInstanceDiffusion": RandomInstanceDiffusion}
NODE_DISPLAY_NAME_MAPPINGS = {"InstDiffTestRandomTinySD15": "Random tiny SD1.5 (test only)",
                              "InstDiffTestLatentMean": "Latent mean (test only)",
                              "InstDiffTestRandomInstanceDiffusion": "Random InstanceDiffusion (test only)"}
