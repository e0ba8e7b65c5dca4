"""Test-only custom nodes, loaded beside the pack by the test host: seeded random SD1.5 and InstanceDiffusion stand-ins."""
import importlib.util
import sys
from pathlib import Path

# the repo's scripts/ package under a private name: the host's own top-level modules stay untouched
_SCRIPTS = Path(__file__).resolve().parents[3] / "scripts"
_spec = importlib.util.spec_from_file_location("instdiff_dev_scripts", _SCRIPTS / "__init__.py",
                                               submodule_search_locations=[str(_SCRIPTS)])
_scripts = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _scripts
_spec.loader.exec_module(_scripts)
random_models = importlib.import_module("instdiff_dev_scripts.random_models")

_TINY = {}


class RandomTinySD15:
    DESCRIPTION = "TEST ONLY: an SD1.5-config UNet with a small base width, full-size random CLIP-L and a random TAESD VAE."
    CATEGORY = "InstanceDiffusion/testing"
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
                             "model_channels": ("INT", {"default": 32, "min": 32, "max": 320, "step": 32})},
                "optional": {"host_dtype": ("BOOLEAN", {"default": False})}}  # the UNet in the host's loader dtype

    def build(self, seed, model_channels, host_dtype=False):
        return (random_models.random_sd15_model(seed, model_channels, host_dtype=host_dtype),
                random_models.random_clip(seed),
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
            _TINY[key] = random_models.formula_instancediffusion(salt, model_channels)
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
