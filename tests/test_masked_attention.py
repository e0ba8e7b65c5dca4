"""Instance-masked attention: isolation between instances, no NaN, resolution consistency."""
import pytest
import torch

from box_pixels import box_regions
from instdiff_model.blocks import fuser_prefix
from instdiff_model.fuser import GatedSelfAttentionDense
from instdiff_model.masked_attention import N_GROUNDING, instance_attention_mask, region_tokens
from tools.formula import fill_module
from tolerance import assert_rel_differs


def _fuser():
    fuser = GatedSelfAttentionDense(320)
    fill_module(fuser, "", fuser_prefix(0))
    return fuser.eval()


def _layout(batch=1):
    boxes = torch.zeros(batch, 30, 4)
    boxes[:, 0] = torch.tensor([0.0, 0.0, 0.5, 0.5])
    boxes[:, 1] = torch.tensor([0.5, 0.5, 1.0, 1.0])
    boxes[:, 2] = torch.tensor([0.4, 0.1, 0.6, 0.3])  # overlaps instance 0
    present = torch.zeros(batch, 30, dtype=torch.bool)
    present[:, :3] = True
    return box_regions(boxes, 512, 512), present


def _slot_token_ids(n_visual, slot):
    return [n_visual + g * 30 + slot for g in range(4)]


def test_other_instances_get_zero_attention_weight():
    torch.manual_seed(0)
    fuser, (h, w) = _fuser(), (16, 16)
    regions, present = _layout()
    mask = instance_attention_mask(regions, present, h, w)
    member = region_tokens(regions, present, h, w)[0]
    only_a = member[:, 0] & ~member[:, 1:].any(-1)
    in_b = member[:, 1]
    assert only_a.sum() > 10 and in_b.sum() > 10
    x, objs = torch.randn(1, h * w, 320), torch.randn(1, N_GROUNDING, 768)
    x2, objs2 = x.clone(), objs.clone()
    x2[0, in_b] += 5 * torch.randn(int(in_b.sum()), 320)  # perturb instance 1's visual tokens ...
    objs2[0, [g * 30 + 1 for g in range(4)]] += 5  # ... and its four grounding tokens
    with torch.no_grad():
        out, out2 = fuser(x, objs, attn_mask=mask), fuser(x2, objs2, attn_mask=mask)
        unmasked2 = fuser(x2, objs2)
    assert torch.equal(out[0, only_a], out2[0, only_a])  # exactly zero weight on instance 1
    assert_rel_differs(out[0, only_a], unmasked2[0, only_a], 1e-3, "no mask")  # without the mask they leak
    assert_rel_differs(out[0, in_b], out2[0, in_b], 1e-3, "instance 1's perturbation")


def test_attention_weights_zero_for_foreign_tokens():
    regions, present = _layout()
    mask = instance_attention_mask(regions, present, 8, 8)[0]
    member = region_tokens(regions, present, 8, 8)[0]
    n = 64
    logits = torch.randn(n + N_GROUNDING, n + N_GROUNDING).masked_fill(~mask, float("-inf"))
    weights = logits.softmax(-1)
    assert torch.isfinite(weights).all()
    for k in range(n):
        mine = set(member[k].nonzero().flatten().tolist())
        for slot in range(3):
            cols = _slot_token_ids(n, slot)
            if slot in mine:
                assert (weights[k, cols] > 0).all()
            else:
                assert (weights[k, cols] == 0).all()
        others = [j for j in range(n) if not mine & set(member[j].nonzero().flatten().tolist())]
        if mine:
            assert (weights[k, others] == 0).all()
        assert (weights[k, n + 120:] > 0).all()  # seg tokens shared by everyone
        assert (weights[k, _slot_token_ids(n, 7)] > 0).all()  # empty slot: unmasked


def test_background_rules():
    regions, present = _layout()
    mask = instance_attention_mask(regions, present, 8, 8)[0]
    member = region_tokens(regions, present, 8, 8)[0]
    background = ~member.any(-1)
    assert background.sum() > 0
    bg = background.nonzero().flatten()
    assert mask[bg][:, bg].all()
    assert not mask[bg][:, :64][:, ~background].any()
    for slot in range(3):
        assert not mask[bg][:, _slot_token_ids(64, slot)].any()
    assert mask[64:].all()  # grounding rows unrestricted


def test_whole_image_region_equals_unmasked():
    torch.manual_seed(1)
    fuser = _fuser()
    regions = torch.zeros(2, 30, 40, 40)
    regions[:, 0] = 1.0
    present = torch.zeros(2, 30, dtype=torch.bool)
    present[:, 0] = True
    mask = instance_attention_mask(regions, present, 8, 12)
    assert mask.all()
    x, objs = torch.randn(2, 96, 320), torch.randn(2, N_GROUNDING, 768)
    with torch.no_grad():
        torch.testing.assert_close(fuser(x, objs, attn_mask=mask), fuser(x, objs), atol=1e-5, rtol=1e-5)


def test_overlap_attends_to_union_and_no_nan():
    torch.manual_seed(2)
    regions = torch.zeros(1, 30, 64, 64, dtype=torch.bool)
    regions[0, 0, :, :40] = True
    regions[0, 1, :, 24:] = True  # columns 24..39 belong to both
    regions[0, 5, 10:20, 10:20] = True  # region of an absent slot: ignored
    present = torch.zeros(1, 30, dtype=torch.bool)
    present[0, :2] = True
    present[0, 2] = True  # present but empty region -> unlocalised
    mask = instance_attention_mask(regions, present, 8, 8)[0]
    member = region_tokens(regions, present, 8, 8)[0]
    both = (member[:, 0] & member[:, 1]).nonzero().flatten()
    assert len(both) > 0
    assert mask[both, :64].all()  # union of both regions = every token here
    assert mask[both][:, _slot_token_ids(64, 0) + _slot_token_ids(64, 1)].all()
    assert mask[:64, _slot_token_ids(64, 2)].all() and mask[:64, _slot_token_ids(64, 5)].all()
    x, objs = torch.randn(1, 64, 320), torch.randn(1, N_GROUNDING, 768)
    with torch.no_grad():
        assert torch.isfinite(_fuser()(x, objs, attn_mask=mask[None])).all()


def test_empty_layout_and_batches_differ():
    regions, present = _layout(batch=2)
    present[1] = False
    mask = instance_attention_mask(regions, present, 16, 16)
    assert mask[1].all() and not mask[0].all()
    assert mask.diagonal(dim1=1, dim2=2).all()


@pytest.mark.parametrize("h,w", [(64, 64), (32, 32), (16, 16), (8, 8), (8, 12), (24, 16), (1, 1)])
def test_resolution_consistency(h, w):
    regions = torch.zeros(1, 30, 512, 512, dtype=torch.bool)
    regions[0, 0, 64:320, 128:448] = True  # large box: area-faithful at every resolution
    regions[0, 1, 300:304, 10:14] = True  # 4x4 pixels: smaller than one token even at 64x64
    present = torch.zeros(1, 30, dtype=torch.bool)
    present[0, :2] = True
    member = region_tokens(regions, present, h, w)[0]
    assert member[:, 1].any()  # the small instance never disappears
    if h >= 8:
        area = member[:, 0].float().mean().item()
        assert abs(area - 256 * 320 / 512 ** 2) <= 1.0 / min(h, w) + 1e-6
        grid = member[:, 0].view(h, w)
        rows, cols = grid.any(1).nonzero().flatten(), grid.any(0).nonzero().flatten()
        assert abs(rows[0].item() / h - 64 / 512) <= 1 / h and abs((cols[-1].item() + 1) / w - 448 / 512) <= 1 / w
    mask = instance_attention_mask(regions, present, h, w)
    assert mask.any(-1).all() and mask.shape == (1, h * w + N_GROUNDING, h * w + N_GROUNDING)


def test_box_regions_keep_tiny_boxes():
    boxes = torch.zeros(1, 30, 4)
    boxes[0, 0] = torch.tensor([0.25, 0.5, 0.75, 1.0])
    boxes[0, 1] = torch.tensor([0.1001, 0.1001, 0.1002, 0.1002])
    r = box_regions(boxes, 8, 4)
    assert r[0, 0].sum() == 4 * 2 and r[0, 0, 4:, 1:3].all()
    assert r[0, 1].sum() == 1 and not r[0, 2].any()
