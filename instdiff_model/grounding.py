"""Grounding of a sampling run: per latent frame the instance tokens, single-instance tokens, null tokens and regions."""
from dataclasses import dataclass

import torch

from .constants import CONTEXT_DIM, N_GROUNDING, N_SLOTS
from .errors import InstDiffError
from .instance_weight import slot_weights
from .locations import instance_extent, instance_mask
from .masked_attention import box_coverage, raster_coverage
from .preprocess import layout_to_grounding_inputs, null_grounding_inputs


@dataclass(eq=False)
class Grounding:
    """tokens (F,184,768) per layout frame; null_tokens (1,184,768); regions (F,30,ceil(H/8),ceil(W/8)) float16 area
    coverage of the layout's latent grid (see masked_attention); present (F,30); weights (F,30) per-instance weights
    or None when all are 1, points (F,30,2) the normalised point tokens' positions (see instance_weight);
    instance_tokens per frame (n,184,768): instance i alone in slot 0 (the multi-instance sampler's trajectories);
    size (width, height) of the layout frames (None: not checked against the latent)."""

    tokens: torch.Tensor
    null_tokens: torch.Tensor
    regions: torch.Tensor
    present: torch.Tensor
    drop: str
    weights: torch.Tensor | None = None
    points: torch.Tensor | None = None
    instance_tokens: tuple = ()
    size: tuple | None = None

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


def frame_masks(layout) -> list:
    """Each instance's mask (its mask, else its rasterised polygon, else None), rasterised once for the frame."""
    return [instance_mask(inst, layout.height, layout.width) for inst in layout.instances]


def instance_regions(layout, inputs: dict, masks=None) -> tuple:
    """(30,ceil(H/8),ceil(W/8)) float16 regions: the area coverage of each latent cell by the instance mask (or
    polygon), else by its box in pixels; present (30,) from the grounding inputs. `masks`: frame_masks(layout) when
    already rasterised. One instance's pixel raster at a time, never all 30 at image size."""
    boxes = torch.zeros(1, N_SLOTS, 4)  # pixel boxes (the extent of a mask / polygon / scribble), zeros for a point
    for i, inst in enumerate(layout.instances):
        if (extent := instance_extent(inst)) is not None:
            boxes[0, i] = torch.tensor(extent)
    regions = box_coverage(boxes, layout.height, layout.width)[0]
    for i, mask in enumerate(frame_masks(layout) if masks is None else masks):
        if mask is not None:
            regions[i] = raster_coverage(mask)
    present = inputs["masks"][0].bool()
    return regions * present[:, None, None], present


def single_instance_inputs(inputs: dict, index: int) -> dict:
    """Slot `index` of a layout's grounding inputs alone in slot 0: an MIS trajectory's inputs, with the same
    points sampled from masks as the full layout's (official prepare_instance_meta slices the full meta)."""
    out = null_grounding_inputs(1)
    for name, value in inputs.items():
        out[name][0, 0] = value[0, index]
    return out


def _tokenize(tokenizer, inputs: list, drop: str, chunk: int) -> torch.Tensor:
    """The tokenizer on batch-1 input dicts, `chunk` per pass, on its device and in its precision; fp32 CPU tokens."""
    weight = next(tokenizer.parameters())
    to_net = lambda t: t.to(device=weight.device, dtype=weight.dtype if t.is_floating_point() else t.dtype)
    tokens = []
    for i in range(0, len(inputs), chunk):
        part = inputs[i:i + chunk]
        batch = {k: to_net(torch.cat([p[k] for p in part])) for k in part[0]}
        tokens.append(tokenizer(**batch, drop=drop)[0].float().cpu())
    return torch.cat(tokens) if tokens else torch.zeros(0, N_GROUNDING, CONTEXT_DIM)


@torch.no_grad()
def build_grounding(tokenizer, layouts: list, phrase_embeddings: list, drop: str, seed: int = 0,
                    chunk: int = 8) -> Grounding:
    """Run the instance tokenizer once on the layout frames, on each instance alone (for the multi-instance sampler)
    and on the null input (batched, `chunk` inputs per pass, on the tokenizer's device and in its precision); the
    tokens are kept in fp32 on the CPU (cast per call when used). Each frame is preprocessed and rasterised once."""
    if not layouts:
        raise InstDiffError("the layout list is empty; connect an InstanceDiffusion layout")
    sizes = {(l.width, l.height) for l in layouts}
    if len(sizes) > 1:
        raise InstDiffError(f"all layout frames must have the same size, got {sorted(sizes)}")
    masks = [frame_masks(layout) for layout in layouts]
    inputs = [layout_to_grounding_inputs(layout, emb, seed, m)
              for layout, emb, m in zip(layouts, phrase_embeddings, masks)]
    tokens = _tokenize(tokenizer, inputs, drop, chunk)
    singles = tuple(_tokenize(tokenizer, [single_instance_inputs(inp, i) for i in range(len(layout.instances))],
                              drop, chunk) for layout, inp in zip(layouts, inputs))
    regions, present = zip(*(instance_regions(layout, inp, m) for layout, inp, m in zip(layouts, inputs, masks)))
    null_tokens = _tokenize(tokenizer, [null_grounding_inputs(1)], drop, chunk)
    return Grounding(tokens, null_tokens, torch.stack(regions), torch.stack(present), drop,
                     weights=slot_weights(layouts), points=torch.cat([inp["points"] for inp in inputs]).float(),
                     instance_tokens=singles, size=sizes.pop())
