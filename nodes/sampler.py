"""InstanceDiffusion KSampler: the multi-instance sampler (MIS) on the host's own samplers, trajectories batched."""
import functools
import inspect
import weakref

import torch

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview

from ..instdiff_model.errors import InstDiffError
from ..instdiff_model.mis import (average_trajectories, mis_grounding, mis_steps, repeat_trajectories, SharedStepNoise,
                                  latents_per_pass, stack_text_conds, trajectory_chunks, trajectory_rows)
from . import host_api
from .patch import FuserPatch, fuser_bytes_per_latent, release_caches
from .tokenizer import load_position_net


def find_fuser_patch(model) -> FuserPatch:
    patches = model.model_options.get("transformer_options", {}).get("patches", {}).get("middle_patch", [])
    ours = [p for p in patches if isinstance(p, FuserPatch)]
    if not ours:
        raise InstDiffError("this MODEL has no InstanceDiffusion patch; connect the output of 'Apply InstanceDiffusion'")
    return ours[-1]


def with_grounding(model, grounding):
    """A clone of the patched model whose fusers use `grounding` (everything else shared)."""
    clone = model.clone()
    patches = clone.model_options["transformer_options"]["patches"]
    old = find_fuser_patch(model)
    patches["middle_patch"] = [old.with_grounding(grounding) if p is old else p for p in patches["middle_patch"]]
    return clone


_MIS_GROUNDINGS = weakref.WeakKeyDictionary()  # grounding -> {latents: (position net ref, MIS grounding)}


def trajectory_grounding(patch: FuserPatch, per: int):
    """The MIS grounding of the patch's grounding, kept while that grounding lives: the host caches the tokenizer's
    output, so reruns (another seed, sampler, Apply setting) skip the single-instance tokenization."""
    cache = _MIS_GROUNDINGS.setdefault(patch.grounding, {})
    net = patch.instdiff.position_net
    if per not in cache or cache[per][0]() is not net:
        cache[per] = (weakref.ref(net), mis_grounding(load_position_net(patch.instdiff), patch.grounding, per))
    return cache[per][1]


def draws_step_noise(sampler_name: str) -> bool:
    """Whether the host's sampler adds noise at each step (ancestral, SDE, LCM, DDPM...) through a noise_sampler
    (False for samplers of other packs that are not k-diffusion functions)."""
    function = getattr(comfy.samplers.sampler_object(sampler_name), "sampler_function", None)
    return function is not None and "noise_sampler" in inspect.signature(function).parameters


def host_sampler(sampler_name: str, noise_sampler=None):
    """The host's sampler object, its per-step noise taken from `noise_sampler` when it draws any."""
    sampler = comfy.samplers.sampler_object(sampler_name)
    if noise_sampler is not None and draws_step_noise(sampler_name):
        sampler.sampler_function = functools.partial(sampler.sampler_function, noise_sampler=noise_sampler)
    return sampler


def auto_max_batch(model, latent: torch.Tensor, masked: bool) -> int:
    """`max_batch` = 0: every trajectory in one pass on the CPU; on a GPU, as many latents per pass as the free memory
    holds (the UNet's own estimate for a cond + uncond row pair plus the fusers' extra, per latent)."""
    if model.load_device.type == "cpu":
        return 0
    shape = list(latent.shape)
    element = torch.empty((), dtype=host_api.unet_compute_dtype(model)).element_size()
    per_latent = model.memory_required([2] + shape[1:]) + fuser_bytes_per_latent(shape[-2], shape[-1], element, masked)
    return latents_per_pass(host_api.free_memory_for(model), per_latent, shape[0])


def instance_captions(patch: FuserPatch, n: int) -> tuple:
    """The text conds of the n instances' captions (the trajectories' prompts), carried by the patch."""
    if len(patch.captions) != n:
        raise InstDiffError(
            f"the multi-instance sampler prompts each instance with its caption, but this MODEL's InstanceDiffusion "
            f"patch carries {len(patch.captions)} caption conditioning(s) for {n} instance(s); connect the Instance "
            "Tokenizer's instance_conditioning output to 'Apply InstanceDiffusion', or set mis to 0")
    return patch.captions


def trajectory_positive(positive: list, captions: tuple, chunk: list, per: int) -> list:
    """One positive entry whose text cond has a row per (trajectory, latent): full prompt, then each caption."""
    if len(positive) != 1:
        raise InstDiffError("the multi-instance sampler needs one positive conditioning (not combined or area "
                            "conditionings); combine the prompts into one text, or set mis to 0")
    full, extra = positive[0]
    conds = [full if t == 0 else captions[t - 1].to(full) for t in chunk]
    return [[stack_text_conds(conds, per), dict(extra)]]


class InstanceDiffusionKSampler:
    DESCRIPTION = ("KSampler with InstanceDiffusion's multi-instance sampler: for the first 'mis' of the steps each "
                   "instance is also denoised alone and the results averaged, which keeps instances from blending. "
                   "The MODEL must come from Apply InstanceDiffusion.")
    SEARCH_ALIASES = ["instancediffusion", "ksampler", "multi-instance sampler", "mis", "sampler", "regional sampler",
                      "instance sampler"]
    OUTPUT_TOOLTIPS = ("The denoised latent; decode it with VAE Decode.",)
    CATEGORY = "InstanceDiffusion"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "The MODEL from Apply InstanceDiffusion."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": True,
                             "tooltip": "The noise seed (as KSampler)."}),
            "steps": ("INT", {"default": 20, "min": 1, "max": 10000, "tooltip": (
                "Sampling steps (as KSampler); 20-30 is usual, the official inference uses 50.")}),
            "cfg": ("FLOAT", {"default": 7.5, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01, "tooltip": (
                "Classifier-free guidance (as KSampler); official 7.5 (its README demos pass 5).")}),
            "sampler_name": (comfy.samplers.KSampler.SAMPLERS, {"tooltip": (
                "The sampler (as KSampler); ancestral and SDE samplers work with MIS.")}),
            "scheduler": (comfy.samplers.KSampler.SCHEDULERS, {"tooltip": (
                "The noise schedule (as KSampler); normal or ddim_uniform ground the same steps as the official code.")}),
            "positive": ("CONDITIONING", {"tooltip": "The scene prompt (CLIP Text Encode)."}),
            "negative": ("CONDITIONING", {"tooltip": "The negative prompt, also used by every instance's trajectory."}),
            "latent_image": ("LATENT", {"tooltip": "The latent to denoise (Empty Latent Image at the layout's size)."}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": (
                "How much of the latent is re-noised (as KSampler): 1.0 for a new image, lower for img2img.")}),
            "mis": ("FLOAT", {"default": 0.36, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip": (
                "Fraction of the steps using the multi-instance sampler. 0.36 (official default): less leaking of "
                "colours and attributes between instances; up to 0.4 recommended; 0 = plain KSampler (fastest). "
                "Costs about 1 + instances x mis times a plain run.")}),
            "max_batch": ("INT", {"default": 0, "min": 0, "max": 4096, "tooltip": (
                "Latents per UNet pass while MIS runs (the image + one per instance). 0 = as many as free GPU "
                "memory holds (all on the CPU); set 2-4 if you run out of memory.")}),
        }}

    def sample(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise, mis,
               max_batch):
        patch = find_fuser_patch(model)
        latent = host_api.fix_empty_latent_channels(model, latent_image["samples"])
        noise = comfy.sample.prepare_noise(latent, seed, latent_image.get("batch_index"))
        noise_mask = latent_image.get("noise_mask")
        k = mis_steps(steps, mis)
        n = len(patch.grounding.layouts[0].instances) if patch.grounding.layouts else 0
        if k == 0 or n == 0:
            callback = latent_preview.prepare_callback(model, steps)
            samples = comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                                          denoise=denoise, noise_mask=noise_mask, callback=callback,
                                          disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
            return (dict(latent_image, samples=samples),)

        try:
            samples = self._mis(model, patch, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                                noise, noise_mask, denoise, k, n, max_batch)
        finally:
            release_caches(model)  # the 2024 host has no end-of-run hook; interrupted runs end here too
        return (dict(latent_image, samples=samples),)

    def _mis(self, model, patch, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, noise,
             noise_mask, denoise, k, n, max_batch):
        """The MIS run: k steps of the n+1 trajectories per latent in passes, their mean, then the rest of the steps."""
        per, captions = latent.shape[0], instance_captions(patch, n)
        grounding = trajectory_grounding(patch, per)
        if max_batch == 0:
            max_batch = auto_max_batch(model, latent, patch.masked_attention)
        chunks = trajectory_chunks(n + 1, per, max_batch)
        total = k * len(chunks) + steps - k
        progress = latent_preview.prepare_callback(model, total)
        sigmas = host_api.ksampler_sigmas(model, steps, sampler_name, scheduler, denoise)
        shared = None
        if draws_step_noise(sampler_name):
            template = torch.zeros(noise.shape, dtype=noise.dtype, device=model.load_device)
            shared = SharedStepNoise(host_api.step_noise_sampler(sampler_name, template, sigmas, seed))
        first = sigmas[:k + 1] if k < len(sigmas) - 1 else sigmas  # as KSampler's last_step, leftover noise kept
        common = dict(disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
        results = []
        for c, chunk in enumerate(chunks):
            rows = torch.cat([torch.arange(t * per, (t + 1) * per) for t in chunk])
            mask = None if noise_mask is None or noise_mask.shape[0] == 1 else repeat_trajectories(noise_mask, len(chunk))
            trajectories = with_grounding(model, trajectory_rows(grounding, rows))
            try:
                results.append(comfy.sample.sample_custom(
                    trajectories, repeat_trajectories(noise, len(chunk)), cfg,
                    host_sampler(sampler_name, shared and shared.for_trajectories(len(chunk))), first.clone(),
                    trajectory_positive(positive, captions, chunk, per), negative,
                    repeat_trajectories(latent, len(chunk)), noise_mask=noise_mask if mask is None else mask,
                    callback=lambda step, x0, x, _, o=c * k: progress(o + step, x0[:1], x, total), **common))
            finally:
                release_caches(trajectories)
            comfy.model_management.throw_exception_if_processing_interrupted()
        samples = average_trajectories(torch.cat(results), n + 1)
        if k < len(sigmas) - 1:
            resume, base = torch.zeros_like(noise), samples
            if noise_mask is not None or getattr(model.model, "inpaint_model", False):
                # the rest keeps the input latent as its latent_image, as one host run does: a denoise mask keeps it
                # outside the mask, an inpainting UNet sees it; the start is still the averaged latent
                resume, base = host_api.resume_noise(model, samples, latent, sigmas[k]), latent
            samples = comfy.sample.sample_custom(
                model, resume, cfg, host_sampler(sampler_name, shared and shared.source),
                sigmas[k:].clone(), positive, negative, base, noise_mask=noise_mask,
                callback=lambda step, x0, x, _: progress(len(chunks) * k + step, x0, x, total), **common)
        return samples


NODE_CLASS_MAPPINGS = {"InstanceDiffusionKSampler": InstanceDiffusionKSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"InstanceDiffusionKSampler": "InstanceDiffusion KSampler (multi-instance)"}
