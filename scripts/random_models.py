"""Seeded random-weight SD1.5 stand-ins (full size or tiny) built with the host's own classes, for tests and the demo."""
import functools
import importlib
import importlib.util

import torch

import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.supported_models
import comfy.taesd.taesd
import comfy.utils
from comfy.ldm.models.autoencoder import AutoencoderKL

from .hostenv import REPO, import_pack


def pack_module(name: str):
    """A module of this pack as the host (or scripts.hostenv.import_pack) loaded it, e.g. "instdiff_model.model"."""
    return importlib.import_module(f"{import_pack().__name__}.{name}")


@functools.cache
def formula():
    """tools/formula.py (the reference weight formula, not shipped) as a private module: a host's sys.path has no
    `tools` of ours."""
    spec = importlib.util.spec_from_file_location("instdiff_dev_formula", REPO / "tools" / "formula.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def formula_instancediffusion(salt: str, model_channels: int = 320):
    """The pack's InstanceDiffusionModel (as the host loaded it) with every parameter from the weight formula."""
    model_cls = pack_module("instdiff_model.model").InstanceDiffusionModel
    return formula().formula_model(model_cls, salt, model_channels=model_channels)


def sd15_unet_config(model_channels: int = 320) -> dict:
    """The unet_config the host's detection produces for SD1.5, with a chosen base width (multiple of 32)."""
    return {
        "use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
        "legacy": False, "adm_in_channels": None, "in_channels": 4, "model_channels": model_channels,
        "num_res_blocks": [2, 2, 2, 2], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
        "channel_mult": [1, 2, 4, 4], "transformer_depth_middle": 1, "use_linear_in_transformer": False,
        "context_dim": 768, "num_heads": 8, "num_head_channels": -1, "transformer_depth_output": [1] * 9 + [0] * 3,
        "use_temporal_resblock": False, "use_temporal_attention": False,
    }


@torch.no_grad()
def randomize_(module: torch.nn.Module, seed: int) -> None:
    """Fill every parameter and float buffer: randn*0.02 for matrices, 1 for norm weights, 0 for biases."""
    g = torch.Generator().manual_seed(seed)
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if not t.is_floating_point():
            continue
        if t.dim() >= 2:
            t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float32) * 0.02)
        elif name.endswith("bias"):
            t.zero_()
        elif name.endswith("weight"):
            t.fill_(1.0)
        else:
            t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float32) * 0.02)


def random_sd15_model(seed: int, model_channels: int = 320, in_channels: int = 4, host_dtype: bool = False):
    """A ModelPatcher around an SD1.5-config UNet with seeded random weights (detection skipped); in_channels 9: an
    SD1.5 inpainting UNet (latent + mask + masked image); host_dtype: stored and computed in the dtypes the host's
    checkpoint loader picks (--fp16-unet, ...), else fp32."""
    config = comfy.supported_models.SD15(dict(sd15_unet_config(model_channels), in_channels=in_channels))
    if host_dtype:
        supported = config.supported_inference_dtypes
        dtype = comfy.model_management.unet_dtype(supported_dtypes=supported)
        config.set_inference_dtype(dtype, comfy.model_management.unet_manual_cast(
            dtype, comfy.model_management.get_torch_device(), supported))
    base = config.get_model({})
    randomize_(base.diffusion_model, seed)
    return comfy.model_patcher.ModelPatcher(
        base, load_device=comfy.model_management.get_torch_device(),
        offload_device=comfy.model_management.unet_offload_device())


def random_clip(seed: int):
    """A full-size CLIP-L text encoder (SD1 CLIP object) with seeded random weights."""
    clip = comfy.sd.CLIP(target=comfy.supported_models.SD15(sd15_unet_config()).clip_target())
    randomize_(clip.cond_stage_model, seed + 1)
    return clip


def random_vae(seed: int, tiny: bool = True):
    """A random VAE: the small TAESD architecture (fast) or the standard SD KL-f8 autoencoder."""
    if tiny:
        shapes = comfy.taesd.taesd.TAESD().state_dict()
    else:  # the SD KL-f8 autoencoder (comfy.sd.VAE would pick the x4-upscaler variant for an empty dict)
        ddconfig = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                    "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
        shapes = AutoencoderKL(ddconfig=ddconfig, embed_dim=4).state_dict()
    g = torch.Generator().manual_seed(seed + 2)
    # fan-in scaled so the random decoder produces visible (non-constant) images
    sd = {k: (torch.randn(v.shape, generator=g) / max(1, v[0].numel()) ** 0.5 if v.dim() >= 2 else
              torch.zeros_like(v) if k.endswith("bias") else torch.ones_like(v)) for k, v in shapes.items()}
    return comfy.sd.VAE(sd=sd)


def write_random_checkpoint(path: str, seed: int) -> None:
    """Write a full-size SD1.5-layout checkpoint (UNet + CLIP-L + VAE, fp16) the host's loader detects as SD1.5."""
    model = random_sd15_model(seed)
    # 2026 cores save through the ModelPatcher (the inner model's method then takes the UNet's dict first)
    owner = model if hasattr(model, "state_dict_for_saving") else model.model
    sd = owner.state_dict_for_saving(random_clip(seed).get_sd(), random_vae(seed, tiny=False).get_sd(), None)
    sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    comfy.utils.save_torch_file(sd, path, metadata={"instdiff_random_standin": f"seed={seed}"})


def write_random_instancediffusion(path: str, seed: int) -> None:
    """Write an InstanceDiffusion file with exactly the official keys and shapes (formula weights, gates non-zero)."""
    sd = formula().official_state_dict(formula_instancediffusion(f"random-{seed}"))
    comfy.utils.save_torch_file({k: v.half().contiguous() for k, v in sd.items()}, path,
                                metadata={"instdiff_random_standin": f"seed={seed}"})


def write_random_lora(path: str, seed: int, rank: int = 4, model_channels: int = 320) -> None:
    """Write a small SD1.5 UNet LoRA (attention projections of the 16 transformer blocks) with random weights, for
    the UNet of base width `model_channels` (320: SD1.5; 32: the tiny test UNet)."""
    g = torch.Generator().manual_seed(seed + 3)
    sd = {}
    for block, full_width in pack_module("instdiff_model.blocks").FUSER_BLOCKS:
        width = full_width * model_channels // 320
        for proj in ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn2.to_q"):
            key = f"lora_unet_{block}.transformer_blocks.0.{proj}".replace(".", "_")
            sd[f"{key}.lora_up.weight"] = torch.randn(width, rank, generator=g) * 0.05
            sd[f"{key}.lora_down.weight"] = torch.randn(rank, width, generator=g) * 0.05
            sd[f"{key}.alpha"] = torch.tensor(float(rank))
    comfy.utils.save_torch_file(sd, path, metadata={"instdiff_random_standin": f"seed={seed}"})


def write_split_instancediffusion(single: str, files: dict) -> None:
    """Write the weights of the InstanceDiffusion file `single` as logtd's three split files (the layout
    ComfyUI-Manager installs): `files` = {"fusers.ckpt": path, "position_net.ckpt": path, "scaleu.ckpt": path}."""
    from safetensors.torch import load_file
    sd = load_file(single)
    fusers = {"input_blocks": {}, "middle_block": {}, "output_blocks": {}}
    fuser_keys = [k for k in sd if ".fuser." in k]  # blocks in UNet order within each group, as logtd's files
    for key in sorted(fuser_keys, key=lambda k: int(k.split(".")[1])):
        block, rest = key.split(".transformer_blocks.0.fuser.")
        group, index = block.split(".")[:2]
        entry = fusers[group].setdefault(index, {"params": {"n_heads": 8, "d_head": 40, "context_dim": 768},
                                                 "state": {}})
        entry["state"][rest] = sd[key]
    torch.save(fusers, files["fusers.ckpt"])
    torch.save({k[len("position_net."):]: v for k, v in sd.items() if k.startswith("position_net.")},
               files["position_net.ckpt"])
    torch.save({str(i): {"scaleu_b": sd[f"scaleu_b_{i}"], "scaleu_s": sd[f"scaleu_s_{i}"]} for i in range(12)},
               files["scaleu.ckpt"])
