"""The pack's one door to the host: what differs between the 2024-03 and 2026 (0.8.0) ComfyUI, and managed weights."""
import weakref

import comfy.model_management
import comfy.model_patcher


def model_sampling_of(model):
    """The host's model_sampling object (both the 2024 and 2026 ModelPatcher APIs)."""
    if hasattr(model, "get_model_object"):
        return model.get_model_object("model_sampling")
    return model.model.model_sampling


def loads_patch_models() -> bool:
    """2026: load_models_gpu also loads the ModelPatchers a patch object lists in `.models()` (2024: it does not)."""
    return hasattr(comfy.model_patcher.ModelPatcher, "model_patches_models")


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
    import comfy.sample
    fix = getattr(comfy.sample, "fix_empty_latent_channels", None)
    return latent if fix is None else fix(model, latent)


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
    import inspect
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


class _SamplingOwner:
    """What the host's KSampler reads model_sampling from: the inner model (2024) or the ModelPatcher (2026)."""

    def __init__(self, model_sampling):
        self.model_sampling = model_sampling

    def get_model_object(self, name: str):
        return getattr(self, name)


def ksampler_sigmas(model, steps: int, sampler_name: str, scheduler: str, denoise: float):
    """The full sigma schedule the host's KSampler uses for these settings (scheduler, denoise, per-sampler tweaks)."""
    import comfy.samplers
    owner = _SamplingOwner(model_sampling_of(model))
    return comfy.samplers.KSampler(owner, steps=steps, device=model.load_device, sampler=sampler_name,
                                   scheduler=scheduler, denoise=denoise, model_options=model.model_options).sigmas


def step_noise_sampler(sampler_name: str, x, sigmas, seed):
    """`f(sigma, sigma_next)` -> the per-step noise the host's sampler `sampler_name` draws for latents shaped like
    `x`: the seeded Brownian tree of the dpmpp SDE samplers (both hosts), else Gaussian noise from the host's
    seeded generator (2026; the 2024 host draws from the global RNG, so we seed a generator as 2026 does)."""
    import inspect

    import torch
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
    import torch
    inner = model.model

    def latent_in(t):  # as the host: an all-zero latent is not shifted
        return inner.process_latent_in(t) if torch.count_nonzero(t) > 0 else t

    return (latent_in(x) - latent_in(latent)) / float(sigma)


# The loader's door (nodes/loader.py): the model-folder registry, the torch device, a cache folder, a progress bar.
def register_model_folder(name: str) -> None:
    """models/<name>/ in the host's folder registry (kept if extra_model_paths.yaml added it first)."""
    import os

    import folder_paths
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
    import folder_paths
    return folder_paths.get_filename_list(folder)


def model_path(folder: str, name: str):
    import folder_paths
    return folder_paths.get_full_path(folder, name)


def model_roots(folder: str) -> list:
    """The directories registered for a model folder (models/<folder>/ and extra_model_paths.yaml's)."""
    import folder_paths
    return folder_paths.get_folder_paths(folder)


def torch_device():
    return comfy.model_management.get_torch_device()


def cache_dir(name: str) -> str:
    """user/__<name>/: a System User folder, which the 2026 host never serves over HTTP (same path on 2024)."""
    import os

    import folder_paths
    if hasattr(folder_paths, "get_system_user_directory"):
        return folder_paths.get_system_user_directory(name)
    return os.path.join(folder_paths.user_directory, "__" + name)


def progress_bar(total: int):
    """The host's progress bar of the running node: `.update_absolute(value, total)`."""
    import comfy.utils
    return comfy.utils.ProgressBar(total)
