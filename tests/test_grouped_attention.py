"""Grouped masked attention equals the dense instance mask: same allowed pairs, same fuser output, every layout kind."""
import math

import numpy as np
import pytest
import torch

from instdiff_model.blocks import fuser_prefix
from instdiff_model.fuser import GatedSelfAttentionDense
from instdiff_model.grounding import instance_regions
from instdiff_model.grouped_attention import GroupedMask, frame_plans, grouped_pays
from instdiff_model.layout import Instance, Layout
from instdiff_model.masked_attention import N_GROUNDING, instance_attention_mask
from instdiff_model.preprocess import layout_to_grounding_inputs
from tools.formula import fill_module

S = 128  # layout side in pixels: a 16x16 latent


def _disk(cx, cy, r):
    yy, xx = np.mgrid[0:S, 0:S]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


LAYOUTS = {  # every location kind, overlaps (two and three deep), empty regions and point-only instances
    "boxes": [Instance("a", box=(0, 0, 64, 64)), Instance("b", box=(64, 64, 64, 64)), Instance("c", box=(50, 10, 30, 30))],
    "triple_overlap": [Instance("a", box=(10, 10, 80, 80)), Instance("b", box=(40, 40, 80, 80)),
                       Instance("c", box=(30, 50, 40, 60))],
    "points_only": [Instance("a", point=(30, 30)), Instance("b", point=(90, 100))],
    "point_and_box": [Instance("a", point=(30, 30)), Instance("b", box=(60, 20, 50, 90))],
    "scribbles": [Instance("a", scribble=[[(10, 10), (60, 40), (100, 30)]]),
                  Instance("b", scribble=[[(20, 100), (110, 110)]], box=(10, 80, 110, 40))],
    "polygons": [Instance("a", polygon=[[(10, 10), (100, 20), (40, 110)]]),
                 Instance("b", polygon=[[(60, 60), (120, 70), (90, 120)]])],
    "masks": [Instance("a", mask=_disk(40, 40, 30)), Instance("b", mask=_disk(80, 80, 35)),
              Instance("c", point=(10, 110))],
    "whole_image": [Instance("a", box=(0, 0, S, S))],
    "tiny_object": [Instance("a", box=(60, 60, 2, 2)), Instance("b", box=(0, 0, 100, 100))],
}


def _regions(instances):
    layout = Layout(width=S, height=S, caption="c", instances=instances)
    emb = torch.randn(len(instances), 768, generator=torch.Generator().manual_seed(0))
    regions, present = instance_regions(layout, layout_to_grounding_inputs(layout, emb, 0))
    return regions[None], present[None]


def _raw_regions():
    """Regions as tensors: a present instance with an empty region and an absent slot with a region."""
    regions = torch.zeros(1, 30, 16, 16)
    regions[0, 0, :, :10] = 1.0
    regions[0, 1, :, 6:] = 1.0
    regions[0, 5, 2:6, 2:6] = 1.0  # absent slot: ignored (unlocalised)
    present = torch.zeros(1, 30, dtype=torch.bool)
    present[0, :3] = True  # slot 2 present, region empty: unlocalised
    return regions, present


RAW = {"empty_region": _raw_regions, "no_instance": lambda: (torch.zeros(1, 30, 16, 16), torch.zeros(1, 30).bool())}


def _allowed(plan, n):
    """The (N, N+184) bool mask a FramePlan's groups allow."""
    allowed = torch.zeros(n, n + N_GROUNDING, dtype=torch.bool)
    for queries, keys in plan.groups:
        q = torch.arange(n) if queries is None else queries
        k = torch.arange(n + N_GROUNDING) if keys is None else keys
        allowed[q[:, None], k[None, :]] = True
    return allowed


def _fuser():
    fuser = GatedSelfAttentionDense(320)
    fill_module(fuser, "", fuser_prefix(0))
    return fuser.eval()


def _close(a, b, tol):
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item() <= tol


@pytest.mark.parametrize("name", sorted(LAYOUTS) + sorted(RAW))
@pytest.mark.parametrize("h,w", [(16, 16), (8, 8), (4, 4), (2, 2), (12, 8)])
def test_groups_allow_exactly_the_masked_pairs(name, h, w):
    regions, present = RAW[name]() if name in RAW else _regions(LAYOUTS[name])
    plan = frame_plans(regions, present, h, w)[0]
    dense = instance_attention_mask(regions, present, h, w)[0, :h * w]
    assert torch.equal(_allowed(plan, h * w), dense)
    assert plan.pairs == int(dense.sum()) and plan.dense_pairs == dense.numel()
    queries = torch.cat([torch.arange(h * w) if q is None else q for q, _ in plan.groups])
    assert sorted(queries.tolist()) == list(range(h * w))  # every visual token in exactly one group


def test_overlap_groups_see_both_instances_and_background_is_one_group():
    regions, present = _regions(LAYOUTS["triple_overlap"])
    plan = frame_plans(regions, present, 16, 16)[0]
    assert len(plan.groups) >= 5  # a, b, c, a&b, a&b&c, ... and the background
    sizes = sorted(len(k) for _, k in plan.groups)
    assert sizes[0] < sizes[-1] < 256 + N_GROUNDING


@pytest.mark.parametrize("name", ["boxes", "triple_overlap", "point_and_box", "masks", "polygons", "empty_region"])
def test_grouped_fuser_equals_dense_masked_fp32(name):
    torch.manual_seed(3)
    fuser, (h, w) = _fuser(), (16, 16)
    regions, present = RAW[name]() if name in RAW else _regions(LAYOUTS[name])
    x, objs = torch.randn(2, h * w, 320), torch.randn(2, N_GROUNDING, 768)
    plan = frame_plans(regions, present, h, w)[0]
    with torch.no_grad():
        dense = fuser(x, objs, attn_mask=instance_attention_mask(regions, present, h, w).expand(2, -1, -1))
        grouped = fuser(x, objs, attn_mask=GroupedMask([(None, plan)]))
        unmasked = fuser(x, objs)
    assert _close(grouped, dense, 1e-5)
    assert not _close(unmasked, dense, 1e-3)  # the mask matters for these layouts


def test_grouped_fuser_fp16_within_its_rounding():
    torch.manual_seed(4)
    fuser, (h, w) = _fuser(), (16, 16)
    regions, present = _regions(LAYOUTS["triple_overlap"])
    x, objs = torch.randn(1, h * w, 320), torch.randn(1, N_GROUNDING, 768)
    mask = instance_attention_mask(regions, present, h, w)
    plan = frame_plans(regions, present, h, w)[0]
    with torch.no_grad():
        reference = fuser(x, objs, attn_mask=mask)
        half = fuser.half()
        dense = half(x.half(), objs.half(), attn_mask=mask)
        grouped = half(x.half(), objs.half(), attn_mask=GroupedMask([(None, plan)]))
    dense_err = (dense.float() - reference).abs().max()
    grouped_err = (grouped.float() - reference).abs().max()
    assert grouped.dtype == torch.float16 and dense_err > 0
    assert grouped_err <= 2 * dense_err + 1e-3 * reference.abs().max()


def test_blocks_of_rows_with_their_own_frames():
    """Per-frame layouts in one batch: rows grouped by frame, a frame that does not group runs its dense mask."""
    torch.manual_seed(5)
    fuser, (h, w) = _fuser(), (8, 8)
    frames = [_regions(LAYOUTS[n]) for n in ("boxes", "masks", "triple_overlap")]
    regions, present = torch.cat([r for r, _ in frames]), torch.cat([p for _, p in frames])
    rows = torch.tensor([0, 1, 2, 1, 0])
    mask = instance_attention_mask(regions, present, h, w)
    plans = frame_plans(regions, present, h, w)
    bias = torch.zeros(mask.shape[0], 1, h * w, h * w + N_GROUNDING).masked_fill(~mask[:, None, :h * w], -math.inf)
    blocks = [((rows == 0).nonzero().flatten(), plans[0]), ((rows == 1).nonzero().flatten(), bias[1:2]),
              ((rows == 2).nonzero().flatten(), plans[2])]
    x, objs = torch.randn(5, h * w, 320), torch.randn(5, N_GROUNDING, 768)
    with torch.no_grad():
        dense = fuser(x, objs, attn_mask=mask[rows])
        grouped = fuser(x, objs, attn_mask=GroupedMask(blocks))
    assert _close(grouped, dense, 1e-5)


def test_cost_model_falls_back_where_grouping_does_not_pay():
    regions, present = _regions(LAYOUTS["boxes"])
    big, small = frame_plans(regions, present, 64, 64)[0], frame_plans(regions, present, 2, 2)[0]
    assert grouped_pays(big, "cpu") and grouped_pays(big, "cuda")
    assert not grouped_pays(small, "cpu")  # 4 tokens in 4 groups: four calls cost more than one masked call
    # many overlapping instances: every token column its own membership set, each with a large shared key set
    chain = [Instance(f"i{i}", box=(4 * i, 0, 40, S)) for i in range(22)]
    regions, present = _regions(chain)
    plan = frame_plans(regions, present, 16, 16)[0]
    assert len(plan.groups) == 16 and not grouped_pays(plan, "cuda")  # one group per token column
    assert torch.equal(_allowed(plan, 256), instance_attention_mask(regions, present, 16, 16)[0, :256])
    single = frame_plans(*_regions(LAYOUTS["whole_image"]), 16, 16)[0]
    assert single.groups == [(None, None)] and grouped_pays(single, "cuda")  # a whole-image instance: plain attention
