"""Grouped instance-masked attention: each group of visual tokens sharing instances attends, unmasked, to its allowed keys only."""
# Exactly the rules of masked_attention.py, without an N x (N+184) mask: the visual tokens are grouped by their
# instance membership (the set of instances a token belongs to; background = the empty set, one group). Every query
# of a group is allowed the same keys: the visual tokens sharing an instance with the set (background: the other
# background tokens), the four grounding tokens of each instance of the set, every unlocalised slot's grounding
# tokens and the 64 seg tokens. So a group is one call of an UNMASKED attention function (flash / sage / xformers)
# on its gathered queries and keys, and the outputs are scattered back. Softmax ignores key order, so this equals the
# dense masked call up to rounding. Plans are built once per (layout frame, token grid) on the CPU from the regions.
# A frame falls back to the dense mask where grouping would not pay (many tiny groups with large shared key sets, as
# many small overlapping instances give, or a grid of a few tokens): the cost model `grouped_pays`.
from dataclasses import dataclass

import torch

from .constants import N_GROUNDING, N_SLOT_GROUPS, N_SLOTS
from .masked_attention import region_tokens

# The cost model's constants, in query-key pairs of attention work: one attention call's fixed cost (launch, index
# gathers, scatter) per device type, and the cost of gathering one key and value (bench/NOTES.md: CPU measured, about
# 20 us per call = ~700 pairs; CUDA estimated from ~10 us kernel launches, to be checked by scripts/gpu_check.py).
CALL_OVERHEAD_PAIRS = {"cpu": 1024, "cuda": 1 << 18}
GATHER_PAIRS = 2


@dataclass
class FramePlan:
    """The attention groups of one layout frame on one token grid: per group (query indices, key indices), None
    meaning all of them; `pairs` = allowed query-key pairs of the visual queries, `dense_pairs` = N x (N+184)."""

    groups: list
    pairs: int
    dense_pairs: int
    gathered: int = 0  # keys gathered over all groups

    def to(self, device) -> "FramePlan":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return FramePlan([(move(q), move(k)) for q, k in self.groups], self.pairs, self.dense_pairs, self.gathered)


def grouped_pays(plan: FramePlan, device_type: str) -> bool:
    """The cost model: grouped attention (its allowed pairs, its key gathers and a fixed cost per group call) against
    the dense masked call over all N x (N+184) pairs; a single group is always one plain call."""
    overhead = CALL_OVERHEAD_PAIRS.get(device_type, CALL_OVERHEAD_PAIRS["cuda"])
    cost = plan.pairs + GATHER_PAIRS * plan.gathered + overhead * len(plan.groups)
    return len(plan.groups) == 1 or cost <= plan.dense_pairs


def membership_groups(member: torch.Tensor) -> list:
    """(N,30) bool membership of one frame -> [(query indices, key indices or None)] per distinct membership set;
    key indices are into the N+184 [visual | grounding] tokens, None = all keys (plain attention)."""
    n_visual = member.shape[0]
    bits = torch.ones(N_SLOTS, dtype=torch.long) << torch.arange(N_SLOTS)
    codes = (member.long() * bits).sum(-1)
    unlocalised = ~member.any(0)
    seg = torch.arange(n_visual + N_SLOTS * N_SLOT_GROUPS, n_visual + N_GROUNDING)
    groups = []
    uniq, inverse = torch.unique(codes, return_inverse=True)
    for g, code in enumerate(uniq.tolist()):
        queries = (inverse == g).nonzero().flatten()
        visual = (codes & code) != 0 if code else codes == 0
        slots = unlocalised | ((code & bits) != 0)
        grounding = (n_visual + torch.arange(N_SLOT_GROUPS)[:, None] * N_SLOTS + slots.nonzero().flatten()).flatten()
        keys = torch.cat([visual.nonzero().flatten(), grounding, seg])
        groups.append((None if len(queries) == n_visual else queries,
                       None if len(keys) == n_visual + N_GROUNDING else keys))
    return groups


def frame_plans(regions: torch.Tensor, present: torch.Tensor, h: int, w: int) -> list:
    """(F,30,Hr,Wr) regions, (F,30) present -> one FramePlan per frame at the h x w token grid (on the CPU)."""
    member = region_tokens(regions.cpu(), present.cpu(), h, w)
    n = h * w
    plans = []
    for frame in member:
        groups = membership_groups(frame)
        pairs = sum((n if q is None else len(q)) * (n + N_GROUNDING if k is None else len(k)) for q, k in groups)
        gathered = sum(0 if k is None else len(k) for _, k in groups)
        plans.append(FramePlan(groups, pairs, n * (n + N_GROUNDING), gathered))
    return plans


class GroupedMask:
    """The attn_mask of grouped attention: per block of rows sharing a layout frame, that frame's FramePlan (or its
    dense additive mask (1, N, N+184) where grouping does not pay, run by `masked`, the host's masked attention)."""

    def __init__(self, blocks: list, masked=None):
        """blocks: [(row indices or None for all rows, FramePlan or dense mask)]."""
        self.blocks, self.masked = blocks, masked

    def attend(self, q, k, v, heads: int, attention):
        """Attention of q (B,N,H*D) over k/v (B,N+184,H*D) as the mask allows, `attention(q, k, v, heads, mask=None)`
        unmasked per group; returns (B,N,H*D)."""
        if len(self.blocks) == 1 and self.blocks[0][0] is None:
            return self._block(q, k, v, heads, attention, self.blocks[0][1])
        out = q.new_empty(q.shape[0], q.shape[1], v.shape[-1])
        for rows, plan in self.blocks:
            part = self._block(q[rows], k[rows], v[rows], heads, attention, plan)
            out.index_copy_(0, rows, part)
        return out

    def _block(self, q, k, v, heads, attention, plan):
        if not isinstance(plan, FramePlan):  # dense fallback: its additive mask broadcast over the rows
            return (self.masked or attention)(q, k, v, heads, mask=plan.expand(q.shape[0], *plan.shape[1:]))
        if len(plan.groups) == 1 and plan.groups[0][0] is None:
            keys = plan.groups[0][1]
            return attention(q, k if keys is None else k[:, keys], v if keys is None else v[:, keys], heads)
        out = q.new_empty(q.shape[0], q.shape[1], v.shape[-1])
        for queries, keys in plan.groups:
            kg, vg = (k, v) if keys is None else (k.index_select(1, keys), v.index_select(1, keys))
            out.index_copy_(1, queries, attention(q.index_select(1, queries), kg, vg, heads))
        return out
