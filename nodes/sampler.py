"""InstanceDiffusion KSampler: the multi-instance sampler (MIS) on the host's own samplers, trajectories batched."""
import torch

from ..instdiff_model.errors import InstDiffError
from ..instdiff_model.mis import (average_trajectories, fuser_bytes_per_latent, instance_count, latents_per_pass,
                                  mis_grounding, mis_steps, repeat_trajectories, SharedStepNoise, stack_text_conds,
                                  trajectory_chunks, trajectory_rows)
from . import host_api
from .patch import FuserPatch, release_caches


def find_fuser_patch(model) -> FuserPatch:
    patches = host_api.model_patches(model).get("middle_patch", [])
    ours = [p for p in patches if isinstance(p, FuserPatch)]
    if not ours:
        raise InstDiffError("this MODEL has no InstanceDiffusion patch; connect the output of 'Apply InstanceDiffusion'")
    return ours[-1]


def with_grounding(model, grounding):
    """A clone of the patched model whose fusers use `grounding` (everything else shared)."""
    old = find_fuser_patch(model)
    return host_api.with_patch_swapped(model, old, old.with_grounding(grounding))


def auto_max_batch(model, latent: torch.Tensor, masked: bool) -> int:
    """`max_batch` = 0: every trajectory in one pass on the CPU; on a GPU, as many latents per pass as the free memory
    holds (the UNet's own estimate for a cond + uncond row pair plus the fusers' extra, per latent)."""
    if host_api.load_device(model).type == "cpu":
        return 0
    shape = list(latent.shape)
    element = torch.empty((), dtype=host_api.unet_compute_dtype(model)).element_size()
    per_latent = model.memory_required([2] + shape[1:]) + fuser_bytes_per_latent(shape[-2], shape[-1], element, masked)
    return latents_per_pass(host_api.free_memory_for(model), per_latent, shape[0])


def instance_captions(conditioning, n: int) -> tuple:
    """The text conds of the n instances' captions (the trajectories' prompts), from the tokenizer's conditioning."""
    if len(conditioning.captions) != n:
        raise InstDiffError(
            f"the multi-instance sampler prompts each instance with its caption, but this MODEL's InstanceDiffusion "
            f"patch carries {len(conditioning.captions)} caption conditioning(s) for {n} instance(s); connect the "
            "Instance Tokenizer's instance_conditioning output to 'Apply InstanceDiffusion', or set mis to 0")
    return conditioning.captions


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
            "sampler_name": (host_api.SAMPLERS, {"tooltip": (
                "The sampler (as KSampler); ancestral and SDE samplers work with MIS.")}),
            "scheduler": (host_api.SCHEDULERS, {"tooltip": (
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
        noise = host_api.prepare_noise(latent, seed, latent_image.get("batch_index"))
        noise_mask = latent_image.get("noise_mask")
        k = mis_steps(steps, mis)
        n = instance_count(patch.grounding)
        if k == 0 or n == 0:
            samples = host_api.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                                      denoise, noise_mask, host_api.progress_callback(model, steps), seed)
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
        per, captions = latent.shape[0], instance_captions(patch.conditioning, n)
        grounding = mis_grounding(patch.grounding, per)
        if max_batch == 0:
            max_batch = auto_max_batch(model, latent, patch.masked_attention)
        chunks = trajectory_chunks(n + 1, per, max_batch)
        total = k * len(chunks) + steps - k
        progress = host_api.progress_callback(model, total)
        sigmas = host_api.ksampler_sigmas(model, steps, sampler_name, scheduler, denoise)
        shared = None
        if host_api.draws_step_noise(sampler_name):
            template = torch.zeros(noise.shape, dtype=noise.dtype, device=host_api.load_device(model))
            shared = SharedStepNoise(host_api.step_noise_sampler(sampler_name, template, sigmas, seed))
        first = sigmas[:k + 1] if k < len(sigmas) - 1 else sigmas  # as KSampler's last_step, leftover noise kept
        results = []
        for c, chunk in enumerate(chunks):
            rows = torch.cat([torch.arange(t * per, (t + 1) * per) for t in chunk])
            mask = None if noise_mask is None or noise_mask.shape[0] == 1 else repeat_trajectories(noise_mask, len(chunk))
            trajectories = with_grounding(model, trajectory_rows(grounding, rows))
            try:
                results.append(host_api.sample_custom(
                    trajectories, repeat_trajectories(noise, len(chunk)), cfg,
                    host_api.host_sampler(sampler_name, shared and shared.for_trajectories(len(chunk))), first.clone(),
                    trajectory_positive(positive, captions, chunk, per), negative,
                    repeat_trajectories(latent, len(chunk)), noise_mask if mask is None else mask,
                    lambda step, x0, x, _, o=c * k: progress(o + step, x0[:1], x, total), seed))
            finally:
                release_caches(trajectories)
            host_api.throw_if_interrupted()
        samples = average_trajectories(torch.cat(results), n + 1)
        if k < len(sigmas) - 1:
            resume, base = torch.zeros_like(noise), samples
            if noise_mask is not None or host_api.is_inpaint_model(model):
                # the rest keeps the input latent as its latent_image, as one host run does: a denoise mask keeps it
                # outside the mask, an inpainting UNet sees it; the start is still the averaged latent
                resume, base = host_api.resume_noise(model, samples, latent, sigmas[k]), latent
            samples = host_api.sample_custom(
                model, resume, cfg, host_api.host_sampler(sampler_name, shared and shared.source),
                sigmas[k:].clone(), positive, negative, base, noise_mask,
                lambda step, x0, x, _: progress(len(chunks) * k + step, x0, x, total), seed)
        return samples


NODE_CLASS_MAPPINGS = {"InstanceDiffusionKSampler": InstanceDiffusionKSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"InstanceDiffusionKSampler": "InstanceDiffusion KSampler (multi-instance)"}
