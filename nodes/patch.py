"""Model-level patches that put InstanceDiffusion into the host UNet: fusers at `middle_patch`, ScaleU at `output_block_patch`."""

import torch

from ..instdiff_model.errors import InstDiffError
from ..instdiff_model.gate import GateSchedule
from ..instdiff_model.masked_attention import instance_attention_mask

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


class _SharedPatch:
    """Patch objects are shared, never deep-copied by ModelPatcher.clone(), and follow the model's device."""

    def __deepcopy__(self, memo):
        return self

    def to(self, device):
        self.instdiff.to(device)
        return self


class FuserPatch(_SharedPatch):
    """middle_patch: x = fuser_i(x, objs) with grounding tokens for cond chunks and null tokens for uncond chunks."""

    def __init__(self, instdiff, grounding, gate, masked_attention: bool):
        """`gate` maps the step's sigmas to the fuser scale (a GateSchedule, or a constant for tests)."""
        self.instdiff = instdiff
        self.grounding = grounding
        self.gate = gate
        self.masked_attention = masked_attention
        self._cache = {}
        self._checked = set()

    def with_grounding(self, grounding) -> "FuserPatch":
        """The same patch (fusers, gate, masked attention) with another grounding."""
        return FuserPatch(self.instdiff, grounding, self.gate, self.masked_attention)

    def _per_chunk(self, kind: str, per: int, device, dtype):
        key = (kind, per, device, dtype)
        if key not in self._cache:
            self._cache[key] = self.grounding.batch_tokens(kind == "cond", per).to(device=device, dtype=dtype)
        return self._cache[key]

    def _mask(self, chunks, per, h, w, device, dtype):
        """Additive float mask (B, 1, h*w, h*w+184) for the visual queries, built once per block size and run."""
        key = ("mask", tuple(chunks), per, h, w, device, dtype)
        if key not in self._cache:
            allowed = torch.cat([instance_attention_mask(*self.grounding.batch_regions(c == COND, per), h, w)[:, :h * w]
                                 for c in chunks])
            bias = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, float("-inf"))
            self._cache[key] = bias[:, None].to(device)
        return self._cache[key]

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
        scale = self.gate(extra_options.get("sigmas"))
        if scale == 0.0:
            return x
        chunks = extra_options["cond_or_uncond"]
        per = x.shape[0] // len(chunks)
        objs = torch.cat([self._per_chunk("cond" if c == COND else "uncond", per, x.device, x.dtype) for c in chunks])
        mask = None
        if self.masked_attention:
            h, w = _token_grid(x.shape[1], extra_options)
            mask = self._mask(chunks, per, h, w, x.device, x.dtype)
        fuser = self.instdiff.fusers[extra_options["transformer_index"]]
        weight = next(fuser.parameters(), None)
        if weight is not None and (weight.dtype != x.dtype or weight.device != x.device):
            fuser.to(device=x.device, dtype=x.dtype)  # follow the UNet's precision (fp16/bf16 on GPUs)
        return fuser(x, objs, scale, mask)


class ScaleUPatch(_SharedPatch):
    """output_block_patch: the learned ScaleU of output block i on (h, skip), every step, cond and uncond."""

    def __init__(self, instdiff):
        self.instdiff = instdiff

    def __call__(self, h, hsp, transformer_options):
        return self.instdiff.scaleu(transformer_options["block"][1], h, hsp)


def model_sampling_of(model):
    """The host's model_sampling object (both the 2024 and 2026 ModelPatcher APIs)."""
    if hasattr(model, "get_model_object"):
        return model.get_model_object("model_sampling")
    return model.model.model_sampling


def apply_patches(model, instdiff, grounding, full: float, decay: float, scaleu: bool, masked_attention: bool):
    """A clone of `model` with the fusers (and ScaleU) inserted; `model` itself is untouched."""
    patched = model.clone()
    gate = GateSchedule(model_sampling_of(model), full, decay)
    patched.set_model_patch(FuserPatch(instdiff, grounding, gate, masked_attention), "middle_patch")
    if scaleu:
        patched.set_model_output_block_patch(ScaleUPatch(instdiff))
    return patched
