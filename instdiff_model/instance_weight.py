"""Per-instance weight: a per-token scale of the fuser residual, the weight of the instance(s) each token belongs to."""
# GatedSelfAttentionDense adds  s*tanh(alpha_attn)*SA(...)  and  s*tanh(alpha_dense)*FF(...)  to every visual token;
# with weights the two terms become  s*tanh(alpha)*w(token)*SA(...)  and  s*tanh(alpha)*w(token)*FF(...).
# Rules for w(token), from the same region membership masked attention uses (masked_attention.region_tokens):
# * a token inside one or more instances takes the largest of their weights (max: raising a weight never weakens a
#   token, and a weight-0 instance cannot switch off a neighbour where they overlap);
# * a point-only instance (no region) owns the one token cell that holds its point;
# * background tokens (inside no instance) keep 1, so the rest of the picture stays the official model's.
# A layout whose weights are all 1 has no weights (None): no map is built and the fusers do not multiply.
import torch

from .constants import N_SLOTS
from .masked_attention import region_tokens


def slot_weights(layouts: list):
    """(F, 30) float32 weights of the layout frames' instance slots (padding 1), or None when every weight is 1."""
    weights = torch.ones(len(layouts), N_SLOTS)
    for f, layout in enumerate(layouts):
        for i, inst in enumerate(layout.instances):
            weights[f, i] = float(inst.weight)
    return None if bool((weights == 1).all()) else weights


def token_weights(regions: torch.Tensor, present: torch.Tensor, weights: torch.Tensor, points: torch.Tensor,
                  h: int, w: int) -> torch.Tensor:
    """(B,30,Hr,Wr) regions, (B,30) present, (B,30) weights, (B,30,2) normalised points (x, y) -> (B, h*w, 1) float32
    weight per visual token of an h x w token grid (rules above)."""
    member = region_tokens(regions, present, h, w)
    point_only = present.bool() & ~member.any(1)
    if bool(point_only.any()):
        col = (points[..., 0].float() * w).long().clamp(0, w - 1)
        row = (points[..., 1].float() * h).long().clamp(0, h - 1)
        cells = torch.zeros_like(member)
        cells.scatter_(1, (row * w + col)[:, None, :].to(member.device), True)
        member = member | (cells & point_only[:, None, :])
    per_slot = weights.float().to(member.device)[:, None, :].expand(member.shape)
    strongest = torch.where(member, per_slot, torch.full_like(per_slot, -1.0)).amax(-1, keepdim=True)
    return torch.where(strongest < 0, torch.ones_like(strongest), strongest)
