"""Test-only nodes (registered when INSTDIFF_TEST_NODES=1): seeded random tiny SD1.5 and InstanceDiffusion stand-ins."""
from . import random_models


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


NODE_CLASS_MAPPINGS = {"InstDiffTestRandomTinySD15": RandomTinySD15}
NODE_DISPLAY_NAME_MAPPINGS = {"InstDiffTestRandomTinySD15": "Random tiny SD1.5 (test only)"}
