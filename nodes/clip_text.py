"""Phrase embeddings from the host's CLIP: CLIP-L's pooled output before the text projection, one per caption."""
import torch

from ..instdiff_model.constants import TEXT_DIM
from ..instdiff_model.errors import InstDiffError


def encode_captions(clip, captions: list) -> tuple:
    """(phrase embeddings (n, 768) float32 CPU, [per-caption cross-attention cond (1, L, 768)]).

    One `encode_from_tokens(..., return_pooled="unprojected")` per caption (both hosts have it): its cond is
    exactly what CLIPTextEncode gives for the caption (MIS prompts), its pooled output the phrase feature.
    """
    out, conds = [], []
    for caption in captions:
        tokens = clip.tokenize(caption)
        if not isinstance(tokens, dict) or set(tokens) != {"l"}:
            raise InstDiffError(
                "the CLIP input is not SD1.5's CLIP-L text encoder (found encoders "
                f"{sorted(tokens) if isinstance(tokens, dict) else type(tokens).__name__}); "
                "connect the CLIP output of your SD1.5 checkpoint loader")
        cond, pooled = clip.encode_from_tokens(tokens, return_pooled="unprojected")
        if pooled is None or pooled.shape[-1] != TEXT_DIM:
            raise InstDiffError(f"the CLIP input gives no {TEXT_DIM}-d pooled output; connect SD1.5's CLIP (CLIP-L)")
        out.append(pooled.reshape(-1, TEXT_DIM)[0].float().cpu())
        conds.append(cond)
    return (torch.stack(out) if out else torch.zeros(0, TEXT_DIM)), conds
