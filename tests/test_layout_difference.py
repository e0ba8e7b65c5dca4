"""Layout Difference: the edit mask covers the old and new regions of changed instances only; refusals name the fix."""
import importlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from instdiff_model.edit_mask import feather_mask, grow_mask, layout_difference, match_instances
from instdiff_model.errors import InstDiffError
from instdiff_model.layout import Instance, Layout

CAT = Instance("a cat", box=(8, 8, 16, 16))
DOG = Instance("a dog", box=(40, 40, 16, 8))
SUN = Instance("a sun", point=(60, 4))


def lay(*instances, width=64, height=64, caption="scene"):
    return Layout(width=width, height=height, caption=caption, instances=list(instances))


def box_pixels(x, y, w, h, size=64):
    m = torch.zeros(size, size)
    m[y:y + h, x:x + w] = 1
    return m


def test_nothing_changed_gives_an_empty_mask_and_says_so():
    mask, notes = layout_difference(lay(CAT, DOG), lay(replace(CAT, color="#ff0000"), DOG), grow=8, feather=4)
    assert mask.shape == (64, 64) and not mask.any()
    assert "no instance changed" in notes[-1]


def test_a_moved_instance_marks_its_old_and_new_box_only():
    moved = replace(CAT, box=(30, 8, 16, 16))
    mask, notes = layout_difference(lay(CAT, DOG), lay(moved, DOG))
    assert torch.equal(mask, torch.maximum(box_pixels(8, 8, 16, 16), box_pixels(30, 8, 16, 16)))
    assert "moved" in notes[0] and "'a cat'" in notes[0]


def test_added_removed_recaptioned_and_reweighted_instances():
    _, notes = layout_difference(lay(CAT, DOG), lay(DOG, SUN))  # cat removed, sun added: dog matched by caption
    assert torch.equal(layout_difference(lay(CAT, DOG), lay(DOG))[0], box_pixels(8, 8, 16, 16))
    assert any("removed" in n or "re-captioned" in n for n in notes)
    mask, notes = layout_difference(lay(CAT), lay(replace(CAT, caption="a tiger")))
    assert torch.equal(mask, box_pixels(8, 8, 16, 16)) and "re-captioned 'a cat' -> 'a tiger'" in notes[0]
    mask, _ = layout_difference(lay(CAT), lay(CAT, SUN))
    assert torch.equal(mask, box_pixels(56, 0, 8, 8))  # a point: a square of 1/8 of the shorter side around it
    heavy = replace(DOG)
    heavy.weight = 2.0  # before and after the per-instance weight field exists
    mask, notes = layout_difference(lay(CAT, DOG), lay(CAT, heavy))
    assert torch.equal(mask, box_pixels(40, 40, 16, 8)) and "re-weighted 1 -> 2" in notes[0]


def test_matching_by_caption_then_by_order():
    a, b = Instance("a", point=(1, 1)), Instance("b", point=(2, 2))
    assert match_instances([a, b], [b, a]) == ([(0, 1), (1, 0)], [], [])
    assert match_instances([a, b], [Instance("c", point=(1, 1)), b]) == ([(0, 0), (1, 1)], [], [])
    assert match_instances([a, a, b], [a, b]) == ([(0, 0), (2, 1)], [1], [])


def test_masks_polygons_and_grow_and_feather():
    painted = np.zeros((64, 64), dtype=bool)
    painted[10:20, 30:34] = True
    mask, _ = layout_difference(lay(), lay(Instance("a blob", mask=painted)))
    assert torch.equal(mask.bool(), torch.from_numpy(painted))
    grown = grow_mask(box_pixels(8, 8, 16, 16), 4)
    assert torch.equal(grown, box_pixels(4, 4, 24, 24))
    soft = feather_mask(grown, 3)
    assert torch.equal(soft[grown.bool()], torch.ones(int(grown.sum())))  # 1 inside, a ramp outside
    assert soft[16, 28].item() == pytest.approx(0.75) and soft[16, 30].item() == pytest.approx(0.25)
    assert soft[16, 31].item() == 0


@pytest.mark.parametrize("size, pattern", [((128, 128), r"64x64 but 'after' is 128x128 \(different size\)"),
                                           ((64, 96), r"different size and aspect ratio")])
def test_refuses_layouts_of_another_size_naming_the_fix(size, pattern):
    with pytest.raises(InstDiffError, match=pattern + r".*give the second layout the first one's width and height"):
        layout_difference(lay(CAT), lay(width=size[0], height=size[1]))


@pytest.fixture(scope="module")
def node(pack):
    return importlib.import_module(pack.__name__ + ".nodes.edit")


def test_node_masks_per_frame_and_refuses_bad_frames(node):
    InstDiffError, node = node.InstDiffError, node.LayoutDifference()  # the pack's own error class
    moved = lay(replace(CAT, box=(30, 8, 16, 16)))
    mask, notes = node.compare([lay(CAT)], [moved], grow=0)
    assert mask.shape == (1, 64, 64) and mask.sum() > 0 and "moved" in notes
    mask, notes = node.compare([lay(CAT)], [lay(CAT), moved], grow=0, frame=-1)
    assert mask.shape == (2, 64, 64) and mask[0].sum() == 0 and mask[1].sum() > 0 and "frame 1:" in notes
    with pytest.raises(InstDiffError, match=r"frame 3 does not exist.*use 0..1"):
        node.compare([lay(CAT)], [lay(CAT), moved], grow=0, frame=3)
    with pytest.raises(InstDiffError, match="same number of frames"):
        node.compare([lay(CAT)] * 2, [lay(CAT)] * 3, grow=0)
    with pytest.raises(InstDiffError, match="width and height"):
        node.compare([lay(CAT)], [lay(width=32)], grow=0)


def test_layout_preview_hatches_the_edit_mask_only(pack):
    preview = importlib.import_module(pack.__name__ + ".nodes.preview").LayoutPreview()
    mask, _ = layout_difference(lay(CAT), lay(replace(CAT, box=(30, 8, 16, 16))))
    (plain,) = preview.preview([lay(CAT)])
    (shown,) = preview.preview([lay(CAT)], mask=mask[None])
    changed = (shown - plain).abs().amax(-1)[0] > 0
    assert changed[mask.bool()].float().mean() > 0.9 and not changed[~mask.bool()].any()
