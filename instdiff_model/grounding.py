"""Grounding of a sampling run: the instance tokens per latent frame, their null tokens, and instance regions."""
from dataclasses import dataclass, field

import torch

from .errors import InstDiffError
from .instance_weight import slot_weights
from .locations import instance_mask
from .masked_attention import box_coverage, raster_coverage
from .preprocess import layout_to_grounding_inputs, null_grounding_inputs


@dataclass(eq=False)
class Grounding:
    """tokens (F,184,768) per layout frame; null_tokens (1,184,768); regions (F,30,ceil(H/8),ceil(W/8)) float16 area
    coverage of the layout's latent grid (see masked_attention); present (F,30); weights (F,30) per-instance weights
    or None when all are 1, points (F,30,2) the normalised point tokens' positions (see instance_weight)."""

    tokens: torch.Tensor
    null_tokens: torch.Tensor
    regions: torch.Tensor
    present: torch.Tensor
    drop: str
    layouts: list = field(default_factory=list)
    phrase_embeddings: list = field(default_factory=list)
    seed: int = 0  # of the random point sampling from masks
    weights: torch.Tensor | None = None
    points: torch.Tensor | None = None

    @property
    def frames(self) -> int:
        return self.tokens.shape[0]

    def frames_for(self, per: int, window=None) -> torch.Tensor:
        """Frame index of each of `per` latents: one layout for all, one layout per latent, or, under video context
        windows, the frames `window` (indices into the whole video) of the latents in this call."""
        if self.frames == 1:
            return torch.zeros(per, dtype=torch.long)
        if window is not None:
            if len(window) != per or not all(0 <= f < self.frames for f in window):
                raise InstDiffError(
                    f"a context window of {per} latents lists frames {list(window)} but the layout has {self.frames} "
                    "frames; give one layout for all frames or one layout per frame of the whole video")
            return torch.tensor(window, dtype=torch.long)
        if self.frames == per:
            return torch.arange(per)
        raise InstDiffError(
            f"the layout has {self.frames} frames but the latent batch has {per} images; "
            f"give one layout for all images or exactly one layout per image"
        )


def instance_regions(layout, inputs: dict) -> tuple:
    """(30,ceil(H/8),ceil(W/8)) float16 regions: the area coverage of each latent cell by the instance mask (or
    polygon), else by its box; present (30,). One instance's pixel raster at a time, never all 30 at image size."""
    regions = box_coverage(inputs["boxes"], layout.height, layout.width)[0]
    for i, inst in enumerate(layout.instances):
        mask = instance_mask(inst, layout.height, layout.width)
        if mask is not None:
            regions[i] = raster_coverage(mask)
    present = inputs["masks"][0].bool()
    return regions * present[:, None, None], present


@torch.no_grad()
def build_grounding(tokenizer, layouts: list, phrase_embeddings: list, drop: str, seed: int = 0,
                    null_tokens=None, chunk: int = 8) -> Grounding:
    """Run the instance tokenizer on the layout frames (batched, `chunk` frames per pass) and on the null input, on
    the tokenizer's device and in its precision; the tokens are kept in fp32 on the CPU (cast per call when used)."""
    if not layouts:
        raise InstDiffError("the layout list is empty; connect an InstanceDiffusion layout")
    sizes = {(l.width, l.height) for l in layouts}
    if len(sizes) > 1:
        raise InstDiffError(f"all layout frames must have the same size, got {sorted(sizes)}")
    weight = next(tokenizer.parameters())
    device, dtype = weight.device, weight.dtype
    to_net = lambda t: t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
    inputs = [layout_to_grounding_inputs(layout, emb, seed) for layout, emb in zip(layouts, phrase_embeddings)]
    tokens = []
    for i in range(0, len(inputs), chunk):
        part = inputs[i:i + chunk]
        batch = {k: to_net(torch.cat([p[k] for p in part])) for k in part[0]}
        tokens.append(tokenizer(**batch, drop=drop)[0].float().cpu())
    regions, present = zip(*(instance_regions(layout, inp) for layout, inp in zip(layouts, inputs)))
    if null_tokens is None:
        null = {k: to_net(v) for k, v in null_grounding_inputs(1).items()}
        null_tokens = tokenizer(**null, drop=drop)[0].float().cpu()
    return Grounding(torch.cat(tokens), null_tokens, torch.stack(regions), torch.stack(present), drop,
                     list(layouts), list(phrase_embeddings), seed=seed, weights=slot_weights(layouts),
                     points=torch.cat([inp["points"] for inp in inputs]).float())
