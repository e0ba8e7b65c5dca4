"""Model-level patches that put InstanceDiffusion into the host UNet: fusers at `middle_patch`, ScaleU at `output_block_patch`."""
import dataclasses

import torch
from torch import nn

from ..instdiff_model.errors import InstDiffError
from ..instdiff_model.gate import GateSchedule
from ..instdiff_model.grouped_attention import GroupedMask, frame_plans, grouped_pays
from ..instdiff_model.instance_weight import token_weights
from ..instdiff_model.masked_attention import instance_attention_mask
from ..instdiff_model.scaleu import FFTFallback
from . import host_api
from .host_api import host_attention, model_sampling_of

COND, UNCOND = 0, 1


def _pick(stack: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """stack[frames] without a copy when every row uses the same frame (broadcast view)."""
    if bool((frames == frames[0]).all()):
        return stack[int(frames[0])][None].expand(len(frames), *stack.shape[1:])
    return stack[frames.to(stack.device)]


def _pick_list(items: list) -> torch.Tensor:
    """Stack per-row tensors, as a broadcast view when they are all the same tensor."""
    if all(t is items[0] for t in items):
        return items[0][None].expand(len(items), *items[0].shape)
    return torch.stack(items)


def _rows(scale, i: int, per: int, x):
    """The gate of chunk i's rows: a float as is, a per-row tensor sliced to the chunk."""
    if torch.is_tensor(scale) and scale.numel() == x.shape[0]:
        return scale.reshape(-1)[i * per:(i + 1) * per]
    return scale


COMPUTE_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype our weights run in: the UNet's activations' dtype (its compute dtype), never an fp8 storage type."""
    return x.dtype if x.dtype in COMPUTE_DTYPES else torch.float32


def run_cast(module: nn.Module, device, dtype, *args, **kwargs):
    """module(*args, **kwargs) with its weights cast to (device, dtype) for this call only; the stored weights keep
    their device and precision (no copy when they already match)."""
    first = next(module.parameters(), None)
    if first is None or (first.device == device and first.dtype == dtype):
        return module(*args, **kwargs)
    params = {name: p.to(device=device, dtype=dtype) for name, p in module.named_parameters()}
    return torch.func.functional_call(module, params, args, kwargs)


class PatchWeights:
    """The fusers + ScaleU of one InstanceDiffusion model as one host-managed model (loaded, counted, offloaded)."""

    def __init__(self, instdiff):
        self.module = nn.ModuleDict({"fusers": instdiff.fusers, "scaleu": instdiff.scaleu})
        self.patcher = host_api.managed_weights(self.module)
        self.nbytes = sum(p.numel() * p.element_size() for p in self.module.parameters())

    def follow(self, device) -> None:
        """The weights follow the UNet to `device` where the host does not load them itself (see host_api)."""
        host_api.follow_unet(self.module, self.patcher, device)


def patch_weights(instdiff) -> PatchWeights:
    """The one PatchWeights of an InstanceDiffusion model (shared by all its patches and clones)."""
    return host_api.managed_for(instdiff, "patch_weights", lambda: PatchWeights(instdiff))


class _SharedPatch:
    """Patch objects are shared, never deep-copied by ModelPatcher.clone(); the host's `.to()` moves, never casts."""

    def __deepcopy__(self, memo):
        return self

    def to(self, device_or_dtype):
        """model_patches_to(device) on load/unload: weights follow (2024 host), caches are dropped.
        model_patches_to(dtype) (fp16/bf16/fp8 UNets): ignored, the weights are cast per call instead."""
        if isinstance(device_or_dtype, torch.dtype):
            return self
        patch_weights(self.instdiff).follow(device_or_dtype)
        self.release()
        return self

    def models(self) -> list:
        """2026 host: the managed models load_models_gpu loads (and counts) with the UNet."""
        return [patch_weights(self.instdiff).patcher]

    def release(self) -> None:
        """Drop every cache built for a run (nothing by default)."""


class RunCache:
    """What a patch builds for a sampling run: device copies (tokens per device and dtype; per layout frame and token
    grid the masks, grouping plans and weight maps) and the sigma last seen; `reset` drops all of it."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.entries = {}
        self.seen_sigmas = self.last_sigma = None  # the host's sigmas tensor of the last UNet call, its max
        self.scale = 1.0  # the gate computed for that call

    def get(self, key, build):
        """The entry `key`, built by `build()` when missing."""
        if key not in self.entries:
            self.entries[key] = build()
        return self.entries[key]

    def per_frame(self, key, frames: torch.Tensor, build) -> dict:
        """{frame: entry} of `key` holding every frame of `frames`; `build(missing)` gives the entries of the frames
        (a sorted list) not built yet."""
        table = self.entries.setdefault(key, {})
        missing = sorted(set(frames.tolist()) - set(table))
        if missing:
            table.update(zip(missing, build(missing)))
        return table

    def rows(self, key, frames: torch.Tensor, build) -> torch.Tensor:
        """per_frame's entries picked per row of `frames` (a broadcast view when all rows share one frame)."""
        table = self.per_frame(key, frames, build)
        return _pick_list([table[f] for f in frames.tolist()])


class FuserPatch(_SharedPatch):
    """middle_patch: x = fuser_i(x, objs) with grounding tokens for cond chunks and null tokens for uncond chunks."""

    def __init__(self, instdiff, conditioning, gate, masked_attention: bool, strength: float = 1.0,
                 grouped: bool = True):
        """`conditioning`: the Instance Tokenizer's output (its grounding feeds the fusers; the multi-instance sampler
        reads the rest); `gate` maps the step's sigma to the fuser scale (a GateSchedule, or a constant for tests);
        `strength` multiplies the gate (Apply's global strength); `grouped`: masked attention as grouped unmasked
        calls where that pays (else always the dense mask)."""
        self.instdiff = instdiff
        self.strength = float(strength)
        self.conditioning = conditioning
        self.gate = gate
        self.masked_attention = masked_attention
        self.grouped = grouped
        self.cache = RunCache()

    @property
    def grounding(self):
        return self.conditioning.grounding

    def with_grounding(self, grounding) -> "FuserPatch":
        """The same patch (fusers, gate, masked attention) with the conditioning's grounding swapped for `grounding`."""
        return FuserPatch(self.instdiff, dataclasses.replace(self.conditioning, grounding=grounding), self.gate,
                          self.masked_attention, self.strength, self.grouped)

    def release(self) -> None:
        """Drop the tokens and masks built on the device (on unload, at the end of a run, before a new run)."""
        self.cache.reset()

    def _tokens(self, cond: bool, frames, x):
        """(rows,184,768) grounding tokens of `frames` (cond) or null tokens (uncond), on x's device and dtype."""
        g = self.grounding  # all frames once per device/dtype; the grounding itself stays fp32 on the CPU
        tokens, null = self.cache.get(("tokens", x.device, x.dtype), lambda: (
            g.tokens.to(device=x.device, dtype=x.dtype), g.null_tokens.to(device=x.device, dtype=x.dtype)))
        if not cond:
            return null.expand(len(frames), -1, -1)
        return _pick(tokens, frames)

    def _mask(self, frames, h, w, x):
        """Additive mask (rows, 1, h*w, h*w+184) of the cond rows: one (h*w, h*w+184) mask per layout frame, built
        on the device when first needed and broadcast (not copied) over the latents that share the frame."""
        def build(missing):
            idx = torch.tensor(missing)
            regions = self.grounding.regions[idx].to(x.device)
            allowed = instance_attention_mask(regions, self.grounding.present[idx].to(x.device), h, w)[:, :h * w]
            bias = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill_(~allowed, float("-inf"))
            return bias[:, None]
        return self.cache.rows(("mask", h, w, x.device, x.dtype), frames, build)

    def _weights(self, frames, h, w, x):
        """(rows, h*w, 1) per-token instance weights of `frames` (instance_weight), built on the device once per frame
        and token grid like the masks; None when every weight is 1 (then the fusers do not multiply)."""
        g = self.grounding
        if g.weights is None:
            return None

        def build(missing):
            idx = torch.tensor(missing)
            return token_weights(g.regions[idx].to(x.device), g.present[idx].to(x.device), g.weights[idx],
                                 g.points[idx], h, w).to(x.dtype)
        return self.cache.rows(("weights", h, w, x.device, x.dtype), frames, build)

    def _groups(self, frames, h, w, x):
        """The cond rows' attention mask with grouping: a GroupedMask whose blocks are the rows sharing a layout frame,
        each with the frame's FramePlan (built once per frame and token grid, reused by every fuser of that grid) or,
        where grouping does not pay, its dense mask; the dense mask itself when no frame of the rows groups."""
        def build(missing):
            built = frame_plans(self.grounding.regions[missing], self.grounding.present[missing], h, w)
            return [p.to(x.device) if grouped_pays(p, x.device.type) else None for p in built]
        plans = self.cache.per_frame(("groups", h, w, x.device), frames, build)
        order = list(dict.fromkeys(frames.tolist()))
        if all(plans[f] is None for f in order):
            return self._mask(frames, h, w, x)
        blocks = [(None if len(order) == 1 else (frames == f).nonzero().flatten().to(x.device),
                   plans[f] if plans[f] is not None else self._mask(torch.tensor([f]), h, w, x)) for f in order]
        return GroupedMask(blocks, host_attention(True))

    def starts_new_run(self, sigma: float) -> bool:
        """The run boundary: sigmas only fall within a run, so a sigma above the last one seen starts a new run (2024
        host: the only end-of-run signal we get)."""
        return self.cache.last_sigma is not None and sigma > self.cache.last_sigma

    def _step_scale(self, sigmas) -> float:
        """The gate of this UNet call from one read of its sigma (its 16 fusers share the host's sigmas tensor; None:
        the gate's own default); a new run starts with fresh caches."""
        if sigmas is None:
            return self.gate(None) * self.strength
        cache = self.cache
        if sigmas is not cache.seen_sigmas:
            sigma = float(sigmas.max())
            if self.starts_new_run(sigma):
                cache.reset()
            cache.seen_sigmas, cache.last_sigma, cache.scale = sigmas, sigma, self.gate(sigma) * self.strength
        return cache.scale

    def _fuser(self, index: int, x, objs, scale, mask, weight=None):
        """Fuser `index` in x's device and compute dtype (weights cast for the call), with the host's attention;
        `weight`: the per-token instance weights of x's rows (None: all 1)."""
        dense = mask is not None and not isinstance(mask, GroupedMask)
        extra = {} if weight is None else {"weight": weight}
        return run_cast(self.instdiff.fusers[index], x.device, compute_dtype(x), x, objs, scale, mask,
                        attention=host_attention(dense), **extra)

    def _check_aspect(self, latent_shape) -> None:
        """Grounding is in normalised coordinates: any latent size works if its aspect matches the layout's."""
        if self.grounding.size is None:
            return
        height, width = latent_shape[-2:]
        lw, lh = self.grounding.size
        if abs(width / height - lw / lh) > 0.02 * lw / lh:
            raise InstDiffError(
                f"the latent is {width * 8}x{height * 8} pixels but the layout is {lw}x{lh}: the aspect ratios "
                "differ, so instances would land in the wrong places; give the Empty Latent Image the layout's aspect "
                "ratio (or change the layout size)")

    def __call__(self, x, extra_options):
        if "original_shape" in extra_options:
            self._check_aspect(tuple(extra_options["original_shape"]))
        scale = self._step_scale(extra_options.get("sigmas"))
        if scale == 0.0:
            return x
        chunks = extra_options["cond_or_uncond"]
        per = x.shape[0] // len(chunks)
        frames = self.grounding.frames_for(per, host_api.context_window_frames(extra_options, per))
        index = extra_options["transformer_index"]
        gridded = self.masked_attention or self.grounding.weights is not None
        h, w = host_api.token_grid(x.shape[1], extra_options) if gridded else (None, None)
        weight = self._weights(frames, h, w, x)  # the same in cond and uncond rows: a weight scales the whole fuser
        if not self.masked_attention:
            objs = torch.cat([self._tokens(c == COND, frames, x) for c in chunks])
            return self._fuser(index, x, objs, scale, None, None if weight is None else torch.cat([weight] * len(chunks)))
        parts = []  # masks for the cond rows only: the uncond rows attend without one
        mask_of = self._groups if self.grouped else self._mask
        for i, (c, rows) in enumerate(zip(chunks, x.split(per))):
            mask = mask_of(frames, h, w, x) if c == COND else None
            parts.append(self._fuser(index, rows, self._tokens(c == COND, frames, x), _rows(scale, i, per, x), mask,
                                     weight))
        return torch.cat(parts)


class ScaleUPatch(_SharedPatch):
    """output_block_patch: the learned ScaleU of output block i on (h, skip), every step, cond and uncond; in float32
    (weights cast for the call, as the fusers'), the Fourier filter on the CPU where this patch found the device's
    FFT unsupported."""

    def __init__(self, instdiff):
        self.instdiff = instdiff
        self.fft = FFTFallback()

    def __call__(self, h, hsp, transformer_options):
        return run_cast(self.instdiff.scaleu, h.device, torch.float32, transformer_options["block"][1], h, hsp,
                        fft=self.fft)


def release_caches(model) -> None:
    """Drop the device caches (tokens, masks) of every InstanceDiffusion patch of a MODEL; the host calls this at the
    end of each sampling run on 2026 hosts, samplers of this pack call it when their run ends or is interrupted."""
    for patches in host_api.model_patches(model).values():
        for p in patches:
            if isinstance(p, _SharedPatch):
                p.release()


def apply_patches(model, instdiff, conditioning, full: float, decay: float, scaleu: bool, masked_attention: bool,
                  strength: float = 1.0):
    """A clone of `model` with the fusers (and ScaleU) inserted; `model` itself is untouched. The fusers and ScaleU
    are one managed model loaded, counted and offloaded with the UNet (see PatchWeights). The fusers' patch holds
    the Instance Tokenizer's `conditioning` as one value (the multi-instance sampler reads it there); `strength`
    scales the fusers' residuals on top of the gate."""
    patched = model.clone()
    gate = GateSchedule(model_sampling_of(model), full, decay)
    patched.set_model_patch(FuserPatch(instdiff, conditioning, gate, masked_attention, strength), "middle_patch")
    if scaleu:
        patched.set_model_output_block_patch(ScaleUPatch(instdiff))
    host_api.count_with_model(patched, patch_weights(instdiff).nbytes)
    host_api.on_sampling_cleanup(patched, "instancediffusion", release_caches)
    return patched
