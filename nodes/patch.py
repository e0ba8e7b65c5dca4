"""Model-level patches that put InstanceDiffusion into the host UNet: fusers at `middle_patch`, ScaleU at `output_block_patch`."""
import torch
from torch import nn

from ..instdiff_model.errors import InstDiffError
from ..instdiff_model.gate import GateSchedule
from ..instdiff_model.grouped_attention import GroupedMask, frame_plans, grouped_pays
from ..instdiff_model.instance_weight import token_weights
from ..instdiff_model.masked_attention import N_GROUNDING, instance_attention_mask
from . import host_api
from .host_api import host_attention, model_sampling_of

COND, UNCOND = 0, 1


def _token_grid(n_tokens: int, extra_options: dict) -> tuple:
    """(h, w) of a block's visual tokens: from activations_shape (new hosts) or the latent size and token count."""
    if "activations_shape" in extra_options:
        return tuple(extra_options["activations_shape"][-2:])
    height, width = extra_options["original_shape"][-2:]
    for level in range(6):
        h, w = -(-height // 2 ** level), -(-width // 2 ** level)
        if h * w == n_tokens:
            return h, w
    raise InstDiffError(f"cannot place {n_tokens} visual tokens on a {height}x{width} latent")


def window_frames(extra_options: dict, per: int):
    """Frame indices of this call's `per` latents under video context windows: AnimateDiff-Evolved's
    `ad_params["sub_idxs"]` or core's `context_window.index_list` (a batch-dim window); None when the whole batch
    is sampled (or a window left over from an earlier call does not match this batch)."""
    sub = (extra_options.get("ad_params") or {}).get("sub_idxs")
    window = extra_options.get("context_window")
    if sub is None and window is not None and getattr(window, "dim", 0) == 0:
        sub = getattr(window, "index_list", None)
    return None if sub is None or len(sub) != per else [int(i) for i in sub]


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
        """2024 host: move (never cast) the weights with the UNet; with --lowvram/--novram they stay offloaded and
        are streamed per call. 2026 host: the host loads self.patcher itself (the patch lists it in .models())."""
        if not host_api.loads_patch_models():
            self.module.to(self.patcher.offload_device if host_api.low_vram() else device)


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


class FuserPatch(_SharedPatch):
    """middle_patch: x = fuser_i(x, objs) with grounding tokens for cond chunks and null tokens for uncond chunks."""

    def __init__(self, instdiff, grounding, gate, masked_attention: bool, captions: tuple = (), strength: float = 1.0,
                 grouped: bool = True):
        """`gate` maps the step's sigma to the fuser scale (a GateSchedule, or a constant for tests); `captions`: per
        instance its caption's text cond, carried for the multi-instance sampler (the fusers do not read them);
        `strength` multiplies the gate (Apply's global strength); `grouped`: masked attention as grouped unmasked
        calls where that pays (else always the dense mask)."""
        self.instdiff = instdiff
        self.strength = float(strength)
        self.grounding = grounding
        self.gate = gate
        self.masked_attention = masked_attention
        self.grouped = grouped
        self.captions = tuple(captions)
        self._cache = {}
        self._checked = set()
        self._last_sigma = self._seen_sigmas = None
        self._scale = 1.0

    def with_grounding(self, grounding) -> "FuserPatch":
        """The same patch (fusers, gate, masked attention, captions) with another grounding."""
        return FuserPatch(self.instdiff, grounding, self.gate, self.masked_attention, self.captions, self.strength,
                          self.grouped)

    def release(self) -> None:
        """Drop the tokens and masks built on the device (on unload, at the end of a run, before a new run)."""
        self._cache.clear()
        self._last_sigma = self._seen_sigmas = None

    def _tokens(self, cond: bool, frames, x):
        """(rows,184,768) grounding tokens of `frames` (cond) or null tokens (uncond), on x's device and dtype."""
        key = ("tokens", x.device, x.dtype)
        if key not in self._cache:  # all frames once per device/dtype; the grounding itself stays fp32 on the CPU
            self._cache[key] = (self.grounding.tokens.to(device=x.device, dtype=x.dtype),
                                self.grounding.null_tokens.to(device=x.device, dtype=x.dtype))
        tokens, null = self._cache[key]
        if not cond:
            return null.expand(len(frames), -1, -1)
        return _pick(tokens, frames)

    def _mask(self, frames, h, w, x):
        """Additive mask (rows, 1, h*w, h*w+184) of the cond rows: one (h*w, h*w+184) mask per layout frame, built
        on the device when first needed and broadcast (not copied) over the latents that share the frame."""
        key = ("mask", h, w, x.device, x.dtype)
        per_frame = self._cache.setdefault(key, {})
        missing = sorted(set(frames.tolist()) - set(per_frame))
        if missing:
            idx = torch.tensor(missing)
            regions = self.grounding.regions[idx].to(x.device)
            allowed = instance_attention_mask(regions, self.grounding.present[idx].to(x.device), h, w)[:, :h * w]
            bias = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill_(~allowed, float("-inf"))
            per_frame.update(zip(missing, bias[:, None]))
        return _pick_list([per_frame[f] for f in frames.tolist()])

    def _weights(self, frames, h, w, x):
        """(rows, h*w, 1) per-token instance weights of `frames` (instance_weight), built on the device once per frame
        and token grid like the masks; None when every weight is 1 (then the fusers do not multiply)."""
        g = self.grounding
        if g.weights is None:
            return None
        per_frame = self._cache.setdefault(("weights", h, w, x.device, x.dtype), {})
        missing = sorted(set(frames.tolist()) - set(per_frame))
        if missing:
            idx = torch.tensor(missing)
            maps = token_weights(g.regions[idx].to(x.device), g.present[idx].to(x.device), g.weights[idx],
                                 g.points[idx], h, w)
            per_frame.update(zip(missing, maps.to(x.dtype)))
        return _pick_list([per_frame[f] for f in frames.tolist()])

    def _groups(self, frames, h, w, x):
        """The cond rows' attention mask with grouping: a GroupedMask whose blocks are the rows sharing a layout frame,
        each with the frame's FramePlan (built once per frame and token grid, reused by every fuser of that grid) or,
        where grouping does not pay, its dense mask; the dense mask itself when no frame of the rows groups."""
        key = ("groups", h, w, x.device)
        plans = self._cache.setdefault(key, {})
        missing = sorted(set(frames.tolist()) - set(plans))
        if missing:
            built = frame_plans(self.grounding.regions[missing], self.grounding.present[missing], h, w)
            plans.update((f, p.to(x.device) if grouped_pays(p, x.device.type) else None) for f, p in zip(missing, built))
        order = list(dict.fromkeys(frames.tolist()))
        if all(plans[f] is None for f in order):
            return self._mask(frames, h, w, x)
        blocks = [(None if len(order) == 1 else (frames == f).nonzero().flatten().to(x.device),
                   plans[f] if plans[f] is not None else self._mask(torch.tensor([f]), h, w, x)) for f in order]
        return GroupedMask(blocks, host_attention(True))

    def warm(self, per: int, h: int, w: int, device, dtype) -> None:
        """Build the device caches of a run (tokens; masks at the (h, w) token grid) before its first call, as that
        call would (benchmarks time the calls without this one-off cost)."""
        like = torch.empty(0, device=device, dtype=dtype)
        frames = self.grounding.frames_for(per)
        self._tokens(True, frames, like)
        if self.masked_attention:
            (self._groups if self.grouped else self._mask)(frames, h, w, like)
        self._weights(frames, h, w, like)

    def _step_scale(self, sigmas) -> float:
        """The gate of this UNet call from one read of its sigma (its 16 fusers share the host's sigmas tensor; None:
        the gate's own default). Sigmas only fall within a run: a rise means a new run, whose caches start afresh
        (2024 host: the only end-of-run signal we get)."""
        if sigmas is None:
            return self.gate(None) * self.strength
        if sigmas is not self._seen_sigmas:
            sigma = float(sigmas.max())
            if self._last_sigma is not None and sigma > self._last_sigma:
                self._cache.clear()
            self._seen_sigmas, self._last_sigma, self._scale = sigmas, sigma, self.gate(sigma) * self.strength
        return self._scale

    def _fuser(self, index: int, x, objs, scale, mask, weight=None):
        """Fuser `index` in x's device and compute dtype (weights cast for the call), with the host's attention;
        `weight`: the per-token instance weights of x's rows (None: all 1)."""
        dense = mask is not None and not isinstance(mask, GroupedMask)
        extra = {} if weight is None else {"weight": weight}
        return run_cast(self.instdiff.fusers[index], x.device, compute_dtype(x), x, objs, scale, mask,
                        attention=host_attention(dense), **extra)

    def _check_aspect(self, latent_shape) -> None:
        """Grounding is in normalised coordinates: any latent size works if its aspect matches the layout's."""
        if not self.grounding.layouts or latent_shape in self._checked:
            return
        height, width = latent_shape[-2:]
        layout = self.grounding.layouts[0]
        if abs(width / height - layout.width / layout.height) > 0.02 * layout.width / layout.height:
            raise InstDiffError(
                f"the latent is {width * 8}x{height * 8} pixels but the layout is {layout.width}x{layout.height}: the "
                "aspect ratios differ, so instances would land in the wrong places; give the Empty Latent Image the "
                "layout's aspect ratio (or change the layout size)")
        self._checked.add(latent_shape)

    def __call__(self, x, extra_options):
        if "original_shape" in extra_options:
            self._check_aspect(tuple(extra_options["original_shape"]))
        scale = self._step_scale(extra_options.get("sigmas"))
        if scale == 0.0:
            return x
        chunks = extra_options["cond_or_uncond"]
        per = x.shape[0] // len(chunks)
        frames = self.grounding.frames_for(per, window_frames(extra_options, per))
        index = extra_options["transformer_index"]
        h, w = _token_grid(x.shape[1], extra_options) if self.masked_attention or self.grounding.weights is not None \
            else (None, None)
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
    """output_block_patch: the learned ScaleU of output block i on (h, skip), every step, cond and uncond."""

    def __init__(self, instdiff):
        self.instdiff = instdiff

    def __call__(self, h, hsp, transformer_options):
        return self.instdiff.scaleu(transformer_options["block"][1], h, hsp)


def fuser_bytes_per_latent(latent_h: int, latent_w: int, element_size: int = 2, masked: bool = False,
                           channels: int = 320, heads: int = 8) -> int:
    """Peak extra bytes one latent (its cond and uncond rows) adds to a UNet call through the finest-grid fuser:
    the [visual | 184 grounding] tokens through norm/q/k/v/out/FF (about 12 copies of N+184 tokens x C), the attention
    scores of a non-fused attention backend (heads x N x (N+184)), and with masked attention one more frame mask
    (N x (N+184)) when latents do not share a layout frame. For sizing MIS passes from free memory."""
    n = latent_h * latent_w
    length = n + N_GROUNDING
    per_row = 12 * length * channels + heads * n * length
    return element_size * (2 * per_row + (n * length if masked else 0))


def release_caches(model) -> None:
    """Drop the device caches (tokens, masks) of every InstanceDiffusion patch of a MODEL; the host calls this at the
    end of each sampling run on 2026 hosts, samplers of this pack call it when their run ends or is interrupted."""
    for patches in model.model_options.get("transformer_options", {}).get("patches", {}).values():
        for p in patches:
            if isinstance(p, _SharedPatch):
                p.release()


def apply_patches(model, instdiff, grounding, full: float, decay: float, scaleu: bool, masked_attention: bool,
                  captions: tuple = (), strength: float = 1.0):
    """A clone of `model` with the fusers (and ScaleU) inserted; `model` itself is untouched. The fusers and ScaleU
    are one managed model loaded, counted and offloaded with the UNet (see PatchWeights). `captions` (per instance
    its caption's text cond) ride with the fusers' patch for the multi-instance sampler; `strength` scales the
    fusers' residuals on top of the gate."""
    patched = model.clone()
    gate = GateSchedule(model_sampling_of(model), full, decay)
    patched.set_model_patch(FuserPatch(instdiff, grounding, gate, masked_attention, captions, strength), "middle_patch")
    if scaleu:
        patched.set_model_output_block_patch(ScaleUPatch(instdiff))
    host_api.count_with_model(patched, patch_weights(instdiff).nbytes)
    host_api.on_sampling_cleanup(patched, "instancediffusion", release_caches)
    return patched
