"""The pack's one door to the host: every host import, what differs between the 2024-03 and 2026 ComfyUI, managed weights."""
import functools
import inspect
import os
import weakref

import torch

import comfy.model_management
import comfy.model_patcher
import comfy.sample
import comfy.samplers
import comfy.utils
import folder_paths
import latent_preview

from ..instdiff_model.errors import InstDiffError


def model_sampling_of(model):
    """The host's model_sampling object (both the 2024 and 2026 ModelPatcher APIs)."""
    if hasattr(model, "get_model_object"):
        return model.get_model_object("model_sampling")
    return model.model.model_sampling


def loads_patch_models() -> bool:
    """2026: load_models_gpu also loads the ModelPatchers a patch object lists in `.models()` (2024: it does not)."""
    return hasattr(comfy.model_patcher.ModelPatcher, "model_patches_models")


def follow_unet(module, patcher, device) -> None:
    """2024 host: move (never cast) patch weights with the UNet to `device`; with --lowvram/--novram they stay on the
    offload device and are streamed per call. 2026 host: nothing, the host loads `patcher` itself (the patch lists it
    in `.models()`)."""
    if not loads_patch_models():
        module.to(patcher.offload_device if low_vram() else device)


def managed_weights(module):
    """A ModelPatcher the host's model management loads (on the host's torch device, the MODEL's), counts and
    offloads (to the UNet's offload device), for weights that are not a UNet."""
    return comfy.model_patcher.ModelPatcher(module, load_device=comfy.model_management.get_torch_device(),
                                            offload_device=comfy.model_management.unet_offload_device())


_MANAGED = weakref.WeakKeyDictionary()  # owner -> {key: built object}


def managed_for(owner, key: str, build):
    """The one `build()` of `key` for `owner` (an InstanceDiffusion model), kept while `owner` lives: e.g. the one
    managed model of its weights, shared by all its patches, clones and tokenizer runs. `build()` must not hold
    `owner` itself (only its submodules), or `owner` would never be freed."""
    built = _MANAGED.setdefault(owner, {})
    if key not in built:
        built[key] = build()
    return built[key]


def count_with_model(patched, nbytes: int) -> None:
    """2024 host: add `nbytes` of patch weights to the patched clone's size, so the memory estimate, the free-memory
    step before loading and the loaded-model accounting count them (the patch moves them with the UNet's `.to`).
    2026 host: nothing to do, the weights are their own managed model listed by the patch's `.models()`."""
    if not loads_patch_models():
        patched.size = patched.model_size() + int(nbytes)


def on_sampling_cleanup(patched, key: str, fn) -> bool:
    """2026: call `fn(patcher)` when a sampling run of `patched` (or of a clone) ends, interrupted or not (the
    ModelPatcher ON_CLEANUP callback). 2024: there is no such hook; returns False (callers drop their caches on
    unload and at the next run instead)."""
    if not hasattr(patched, "add_callback_with_key"):
        return False
    import comfy.patcher_extension
    patched.add_callback_with_key(comfy.patcher_extension.CallbacksMP.ON_CLEANUP, key, fn)
    return True


def low_vram() -> bool:
    """The host runs with --lowvram/--novram: patch weights stay on the offload device and are streamed per call."""
    state = comfy.model_management.vram_state
    return state in (comfy.model_management.VRAMState.LOW_VRAM, comfy.model_management.VRAMState.NO_VRAM)


def fix_empty_latent_channels(model, latent):
    """2026: an empty latent gets the MODEL's latent channels (as core KSampler does); 2024: the latent as it is."""
    fix = getattr(comfy.sample, "fix_empty_latent_channels", None)
    return latent if fix is None else fix(model, latent)


def model_patches(model) -> dict:
    """{patch point: [patch objects]} of a MODEL's transformer_options (empty when it has none)."""
    return model.model_options.get("transformer_options", {}).get("patches", {})


def with_patch_swapped(model, old, new):
    """A clone of the MODEL with patch object `old` replaced by `new` wherever it is set (the rest shared)."""
    clone = model.clone()
    patches = clone.model_options["transformer_options"]["patches"]
    for point, listed in patches.items():
        patches[point] = [new if p is old else p for p in listed]
    return clone


def load_device(model):
    """The torch device a MODEL runs on."""
    return model.load_device


def unet_config(model) -> tuple:
    """(family name, unet_config dict) of a MODEL's UNet: its model config's class and settings (empty when the
    MODEL has none)."""
    config = getattr(model.model, "model_config", None)
    family = type(config).__name__ if config is not None else type(model.model).__name__
    return family, getattr(config, "unet_config", {}) or {}


def is_inpaint_model(model) -> bool:
    """Whether the MODEL's UNet is an inpainting UNet (it sees the input latent and mask as extra channels)."""
    return bool(getattr(model.model, "inpaint_model", False))


def token_grid(n_tokens: int, extra_options: dict) -> tuple:
    """(h, w) of a transformer block's visual tokens: the host's activations_shape (2026), else (2024) from the
    latent size (original_shape) and the token count."""
    if "activations_shape" in extra_options:
        return tuple(extra_options["activations_shape"][-2:])
    height, width = extra_options["original_shape"][-2:]
    for level in range(6):
        h, w = -(-height // 2 ** level), -(-width // 2 ** level)
        if h * w == n_tokens:
            return h, w
    raise InstDiffError(f"cannot place {n_tokens} visual tokens on a {height}x{width} latent")


def context_window_frames(extra_options: dict, per: int):
    """Frame indices of this call's `per` latents under video context windows: AnimateDiff-Evolved's
    `ad_params["sub_idxs"]` or core's `context_window.index_list` (a batch-dim window); None when the whole batch
    is sampled (or a window left over from an earlier call does not match this batch)."""
    sub = (extra_options.get("ad_params") or {}).get("sub_idxs")
    window = extra_options.get("context_window")
    if sub is None and window is not None and getattr(window, "dim", 0) == 0:
        sub = getattr(window, "index_list", None)
    return None if sub is None or len(sub) != per else [int(i) for i in sub]


def unet_compute_dtype(model):
    """The dtype a MODEL's UNet computes in (an fp8-weight UNet computes in its manual-cast dtype)."""
    inner = model.model
    return getattr(inner, "manual_cast_dtype", None) or inner.get_dtype()


def free_memory_for(model) -> int:
    """Bytes free on the MODEL's load device for its inference, less its weights when they are not loaded yet."""
    free = comfy.model_management.get_free_memory(model.load_device)
    loaded = any(m.model.is_clone(model) for m in comfy.model_management.current_loaded_models)
    return free if loaded else free - model.model_size()


def load_models(models: list, memory_required: int = 0) -> None:
    """Ask the host to load managed models onto their load device (freeing others first if memory is short)."""
    comfy.model_management.load_models_gpu(models, memory_required=memory_required)


def _takes_query_subset_mask(fn) -> bool:
    """False for backends that cannot take the fusers' per-row additive mask (rows, 1, N, N+184): sage attention
    drops masks silently; the 2024 host's xformers (no `skip_reshape`) pads masks to the query length."""
    name = getattr(fn, "__name__", "")
    if name in ("attention_sage", "attention3_sage"):
        return False
    return name != "attention_xformers" or "skip_reshape" in inspect.signature(fn).parameters


def host_attention(masked: bool):
    """The host's attention function `f(q, k, v, heads, mask=None)` chosen by the user's backend flags (xformers,
    sage, split, pytorch); for an additive mask the host's masked variant, or its PyTorch attention where that
    variant cannot take our mask."""
    import comfy.ldm.modules.attention as attention
    if not masked:
        return attention.optimized_attention
    fn = attention.optimized_attention_masked
    return fn if _takes_query_subset_mask(fn) else attention.attention_pytorch


SAMPLERS, SCHEDULERS = comfy.samplers.KSampler.SAMPLERS, comfy.samplers.KSampler.SCHEDULERS  # the host's choices


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


def prepare_noise(latent, seed: int, batch_index=None):
    """The initial noise core KSampler draws for `latent` and `seed`."""
    return comfy.sample.prepare_noise(latent, seed, batch_index)


def progress_callback(model, steps: int):
    """The host's per-step callback: the progress bar and the latent preview of `steps` steps in all."""
    return latent_preview.prepare_callback(model, steps)


def sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent, denoise, noise_mask,
           callback, seed):
    """One run of core KSampler's sampling (its sampler and scheduler by name)."""
    return comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                               denoise=denoise, noise_mask=noise_mask, callback=callback,
                               disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)


def sample_custom(model, noise, cfg, sampler, sigmas, positive, negative, latent, noise_mask, callback, seed):
    """One run of the host's custom sampling (a sampler object and explicit sigmas)."""
    return comfy.sample.sample_custom(model, noise, cfg, sampler, sigmas, positive, negative, latent,
                                      noise_mask=noise_mask, callback=callback,
                                      disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)


def throw_if_interrupted() -> None:
    """Raise the host's interruption when the user pressed Cancel."""
    comfy.model_management.throw_exception_if_processing_interrupted()


class _SamplingOwner:
    """What the host's KSampler reads model_sampling from: the inner model (2024) or the ModelPatcher (2026)."""

    def __init__(self, model_sampling):
        self.model_sampling = model_sampling

    def get_model_object(self, name: str):
        return getattr(self, name)


def ksampler_sigmas(model, steps: int, sampler_name: str, scheduler: str, denoise: float):
    """The full sigma schedule the host's KSampler uses for these settings (scheduler, denoise, per-sampler tweaks)."""
    owner = _SamplingOwner(model_sampling_of(model))
    return comfy.samplers.KSampler(owner, steps=steps, device=model.load_device, sampler=sampler_name,
                                   scheduler=scheduler, denoise=denoise, model_options=model.model_options).sigmas


def step_noise_sampler(sampler_name: str, x, sigmas, seed):
    """`f(sigma, sigma_next)` -> the per-step noise the host's sampler `sampler_name` draws for latents shaped like
    `x`: the seeded Brownian tree of the dpmpp SDE samplers (both hosts), else Gaussian noise from the host's
    seeded generator (2026; the 2024 host draws from the global RNG, so we seed a generator as 2026 does)."""
    from comfy.k_diffusion import sampling
    if sampler_name.startswith("dpmpp_") and "_sde" in sampler_name:
        return sampling.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=seed,
                                                 cpu=not sampler_name.endswith("_gpu"))
    if "seed" in inspect.signature(sampling.default_noise_sampler).parameters:
        return sampling.default_noise_sampler(x, seed=seed)
    offset = 1 if x.device.type == "cpu" else 0  # as the 2026 host's default_noise_sampler
    generator = torch.Generator(device=x.device).manual_seed((seed + offset) % 2 ** 64)
    return lambda sigma, sigma_next: torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)


def resume_noise(model, x, latent, sigma: float):
    """The noise with which the host's sampler, given `latent` as its latent_image and sigmas starting at `sigma`
    (below the maximum), starts from the partly denoised `x` (both as the sampler returns latents): its start is
    latent_in + sigma * noise (the SD1.5 noise scaling of both hosts), and a denoise mask keeps `latent` outside."""
    inner = model.model

    def latent_in(t):  # as the host: an all-zero latent is not shifted
        return inner.process_latent_in(t) if torch.count_nonzero(t) > 0 else t

    return (latent_in(x) - latent_in(latent)) / float(sigma)


# The loader's door (nodes/loader.py): the model-folder registry, the torch device, a cache folder, a progress bar.
def register_model_folder(name: str) -> None:
    """models/<name>/ in the host's folder registry (kept if extra_model_paths.yaml added it first)."""
    default = os.path.join(folder_paths.models_dir, name)
    exts = set(folder_paths.supported_pt_extensions)
    if name in folder_paths.folder_names_and_paths:
        paths, known = folder_paths.folder_names_and_paths[name]
        if default not in paths:
            paths.append(default)
        folder_paths.folder_names_and_paths[name] = (paths, set(known) | exts)
    else:
        folder_paths.folder_names_and_paths[name] = ([default], exts)
    os.makedirs(default, exist_ok=True)


def model_files(folder: str) -> list:
    """The file names (relative, '/'-separated) the host lists in a registered model folder."""
    return folder_paths.get_filename_list(folder)


def model_path(folder: str, name: str):
    return folder_paths.get_full_path(folder, name)


def model_roots(folder: str) -> list:
    """The directories registered for a model folder (models/<folder>/ and extra_model_paths.yaml's)."""
    return folder_paths.get_folder_paths(folder)


def torch_device():
    return comfy.model_management.get_torch_device()


def cache_dir(name: str) -> str:
    """user/__<name>/: a System User folder, which the 2026 host never serves over HTTP (same path on 2024)."""
    if hasattr(folder_paths, "get_system_user_directory"):
        return folder_paths.get_system_user_directory(name)
    return os.path.join(folder_paths.user_directory, "__" + name)


def progress_bar(total: int):
    """The host's progress bar of the running node: `.update_absolute(value, total)`."""
    return comfy.utils.ProgressBar(total)
