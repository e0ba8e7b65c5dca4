"""Instance regions kept as area coverage of the latent grid: small at any size, same masks as pixel regions."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from box_pixels import box_regions
from zero_tokenizer import ZeroTokenizer
from instdiff_model import layout as L
from instdiff_model.locations import instance_mask
from instdiff_model.grounding import instance_regions
from instdiff_model.masked_attention import instance_attention_mask, raster_coverage, region_tokens
from instdiff_model.preprocess import layout_to_grounding_inputs

REPO = Path(__file__).resolve().parents[1]


def layout_and_inputs(width, height, seed):
    """Boxes at fractional pixels (one of a few pixels), an overlap, a polygon, a mask, a point-only instance."""
    rng = np.random.RandomState(seed)
    insts = []
    for k in range(7):
        x, y = rng.uniform(0, width * 0.8), rng.uniform(0, height * 0.8)
        w, h = rng.uniform(1, width - x), rng.uniform(1, height - y)
        if k == 3:
            w, h = rng.uniform(1, 6), rng.uniform(1, 6)
        insts.append(L.Instance(caption=f"box {k}", box=(x, y, w, h)))
    insts.append(L.Instance(caption="poly", polygon=[[(0.15 * width, 0.1 * height), (0.85 * width, 0.25 * height),
                                                      (0.45 * width, 0.9 * height)]]))
    mask = np.zeros((height, width), bool)
    mask[height // 3:height // 3 + height // 5, width // 7:width // 2] = True
    mask[3 * height // 4, 3:50] = True  # a one-pixel line: under half of every cell it crosses
    insts += [L.Instance(caption="mask", mask=mask), L.Instance(caption="point", point=(width / 3, height / 3))]
    layout = L.Layout(width=width, height=height, instances=insts)
    return layout, layout_to_grounding_inputs(layout, torch.zeros(len(insts), 768), seed)


def pixel_regions(layout, inputs):
    """The former regions: (30,H,W) bool at image size (mask / polygon raster, else the box's pixels)."""
    regions = box_regions(inputs["boxes"], layout.height, layout.width)[0].clone()
    for i, inst in enumerate(layout.instances):
        mask = instance_mask(inst, layout.height, layout.width)
        if mask is not None:
            regions[i] = torch.from_numpy(mask)
    present = inputs["masks"][0].bool()
    return regions & present[:, None, None], present


def pixel_tokens(regions, present, h, w):
    """The former membership, written out: pool the pixels to h x w, >= half by area, else every touched token."""
    inside = regions.float()
    by_area = F.adaptive_avg_pool2d(inside, (h, w)) >= 0.5
    touched = F.adaptive_max_pool2d(inside, (h, w)) > 0
    member = torch.where(~by_area.flatten(2).any(-1)[..., None, None], touched, by_area) & present[..., None, None]
    return member.flatten(2).transpose(1, 2)


def token_grids(width, height):
    """The fusers' token grids of a latent of the layout's size / 8: SD1.5 levels 0..3."""
    return [(-(-height // 8 // 2 ** k), -(-width // 8 // 2 ** k)) for k in range(4)]


@pytest.mark.parametrize("width,height", [(512, 512), (768, 512), (576, 832)])
def test_masks_equal_pixel_regions_where_cells_nest(width, height):
    for seed in range(2):
        layout, inputs = layout_and_inputs(width, height, seed)
        cover, present = instance_regions(layout, inputs)
        pixels, _ = pixel_regions(layout, inputs)
        assert cover.dtype == torch.float16 and cover.shape == (30, height // 8, width // 8)
        vanished = 0
        for h, w in token_grids(width, height):
            member = region_tokens(cover[None], present[None], h, w)
            assert torch.equal(member, pixel_tokens(pixels[None], present[None], h, w)), (h, w)
            assert torch.equal(instance_attention_mask(cover[None], present[None], h, w),
                               instance_attention_mask(pixels[None], present[None], h, w))
            by_area = F.adaptive_avg_pool2d(pixels[None].float(), (h, w)) >= 0.5
            vanished += int((member[0].any(0) & ~by_area[0].flatten(1).any(-1)).sum())
        assert vanished > 0  # the "touches" rule was exercised (the small box, the one-pixel line)


@pytest.mark.parametrize("width,height", [(520, 392), (500, 300), (72, 56)])
def test_sizes_that_do_not_nest_differ_only_on_region_borders(width, height):
    layout, inputs = layout_and_inputs(width, height, 0)
    cover, present = instance_regions(layout, inputs)
    pixels, _ = pixel_regions(layout, inputs)
    assert cover.shape == (30, -(-height // 8), -(-width // 8))
    for h, w in token_grids(width, height):
        member = region_tokens(cover[None], present[None], h, w)[0]
        differ = member != pixel_tokens(pixels[None], present[None], h, w)[0]
        cells = cover.float()[None]
        partly_inside = ((F.adaptive_max_pool2d(cells, (h, w)) > 0) & (-F.adaptive_max_pool2d(-cells, (h, w)) < 1))
        assert not (differ & ~partly_inside[0].flatten(1).T).any()
        localised = present & (cover.flatten(1) > 0).any(-1)
        assert torch.equal(member.any(0), localised)  # every localised instance keeps a token at every grid


def test_small_object_keeps_every_token_it_touches():
    layout = L.Layout(width=512, height=512, instances=[  # the dot: 3x3 pixels across four tokens' corner at 8x8
        L.Instance(caption="dot", box=(126, 126, 3, 3)), L.Instance(caption="left", box=(0, 0, 256, 512))])
    cover, present = instance_regions(layout, layout_to_grounding_inputs(layout, torch.zeros(2, 768)))
    assert cover[0, 15, 15] == 4 / 64 and cover[0, 16, 16] == 1 / 64 and cover[0].sum() == 9 / 64
    for size in (8, 16, 64):
        member = region_tokens(cover[None], present[None], size, size)[0]
        cell = 512 // size
        touched = {(r, c) for r in range(126 // cell, 128 // cell + 1) for c in range(126 // cell, 128 // cell + 1)}
        assert {divmod(int(t), size) for t in member[:, 0].nonzero()} == touched
        assert member[:, 1].float().mean() == 0.5


def test_latent_larger_than_the_layout_sees_each_region_cell_as_a_block():
    layout, inputs = layout_and_inputs(256, 256, 1)
    cover, present = instance_regions(layout, inputs)
    at_grid = region_tokens(cover[None], present[None], 32, 32)[0].T.reshape(30, 32, 32)
    at_double = region_tokens(cover[None], present[None], 64, 64)[0].T.reshape(30, 64, 64)
    assert torch.equal(at_double, at_grid.repeat_interleave(2, 1).repeat_interleave(2, 2))


MEMORY_PROBE = textwrap.dedent("""
    import resource, sys, torch
    sys.path.insert(0, {repo!r})
    from instdiff_model import layout as L
    from instdiff_model.grounding import instance_regions
    side = 8192
    insts = [L.Instance(caption=str(i), box=(i * 250, i * 200, 900, 1200)) for i in range(29)]
    insts.append(L.Instance(caption="poly", polygon=[[(100, 100), (8000, 700), (4000, 8100)]]))
    layout = L.Layout(width=side, height=side, instances=insts)
    boxes = torch.tensor([[(i * 250) / side, (i * 200) / side, (i * 250 + 900) / side, (i * 200 + 1200) / side]
                          for i in range(30)])[None]
    before = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
    regions, present = instance_regions(layout, {{"boxes": boxes, "masks": torch.ones(1, 30)}})
    # VmHWM: this process's own peak (ru_maxrss would carry the peak of a big parent process over fork + exec)
    peak = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
    print(regions.nbytes, str(regions.dtype), tuple(regions.shape), peak - before, float(regions[29].float().mean()))
""")


def test_8192_layout_regions_are_small_and_never_all_at_image_size():
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE.format(repo=str(REPO))], capture_output=True, text=True,
                         check=True, timeout=300).stdout.split()
    nbytes, dtype, growth, poly_area = int(out[0]), out[1], int(out[-2]), float(out[-1])
    assert dtype == "torch.float16" and nbytes == 1024 * 1024 * 30 * 2  # 60 MiB a frame (was 30 x 8192² bool: 1.9 GiB)
    assert growth < 700 * 2 ** 20  # one instance's 64 MiB raster and its temporaries at a time
    shoelace = abs(100 * (700 - 8100) + 8000 * (8100 - 100) + 4000 * (100 - 700)) / 2
    assert abs(poly_area - shoelace / 8192 ** 2) < 1e-3  # the polygon's coverage is its area


def test_masks_are_rasterised_once_per_frame(monkeypatch):
    """The tokenizer's one pass rasterises each polygon once per layout frame: its inputs (segs, sampled points) and
    its region come from the same raster."""
    from instdiff_model import grounding, locations
    frames, inputs = zip(*(layout_and_inputs(128, 96, seed) for seed in (0, 1, 2)))  # a polygon, a mask per frame
    calls, real = [], locations.rasterize_polygon
    monkeypatch.setattr(locations, "rasterize_polygon", lambda *a: calls.append(a) or real(*a))
    out = grounding.build_grounding(ZeroTokenizer(), list(frames), [torch.zeros(10, 768)] * 3, "sd15", 0)
    assert len(calls) == 3 and len(out.instance_tokens) == 3
    monkeypatch.undo()
    for layout, inp, regions in zip(frames, inputs, out.regions):
        assert torch.equal(regions, instance_regions(layout, inp)[0])


@pytest.mark.parametrize("side", [832, 720, 1000])
def test_an_integer_pixel_box_covers_exactly_its_pixels(side):
    """Regions come from the boxes in pixels (not normalised and scaled back, which moves a border by a pixel column
    at sizes like 832 where x / side * side rounds below x): a box of whole pixels covers exactly those pixels."""
    starts = [x for x in range(8, side - 40) if float(torch.tensor(x / side) * side) < x][:20]
    assert starts  # the sizes where the round trip loses a column
    layout = L.Layout(width=side, height=64, instances=[L.Instance(caption=str(x), box=(x, 8, 17, 40)) for x in starts])
    cover, _ = instance_regions(layout, layout_to_grounding_inputs(layout, torch.zeros(len(starts), 768)))
    for i, x in enumerate(starts):
        pixels = np.zeros((64, side), bool)
        pixels[8:48, x:x + 17] = True
        assert torch.equal(cover[i], raster_coverage(pixels)), x
