"""Official preprocessing reproduced exactly (vectors/preprocess) + grounding-input assembly."""
import json
import random

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from instdiff_model import preprocess as P
from instdiff_model.errors import InstDiffError
from instdiff_model.geometry import rasterize_polygon, resize_nearest
from instdiff_model.layout import Instance, Layout
from refpaths import vectors_dir
from tools.official_boxes import attention_mask_from_box, rescale_box

META = json.loads((vectors_dir() / "preprocess.json").read_text())
REF = load_file(str(vectors_dir() / "preprocess.safetensors"))
MASKS = sorted(META["masks"])


@pytest.mark.parametrize("name", MASKS)
def test_mask_outputs_exact(name):
    info = META["masks"][name]
    mask = REF[f"in.mask__{name}"]
    h, w = mask.shape
    py_seed = info["python_random_seed_before_polygon_sampling"]
    boundary = P.boundary_points(mask)
    assert len(P.binary_mask_to_polygon(mask)) == info["n_contours"]
    assert [len(p) for p in P.binary_mask_to_polygon(mask)] == info["contour_lengths_floats"]
    assert np.array_equal(boundary.ravel(), REF[f"out.boundary_concat__{name}"])
    inside = P.inside_points(mask, 128, random.Random(py_seed)).astype(np.float64).ravel()
    assert np.array_equal(inside, REF[f"out.inside_points_k128__{name}"])
    poly = P.polygon_points(mask, random.Random(py_seed))
    assert np.array_equal(poly, REF[f"out.polygons_raw__{name}"])
    assert np.array_equal(P.normalise_points(poly, w, h), REF[f"out.polygons_norm__{name}"])
    scrib = P.scribble_points(mask, np.random.RandomState(info["np_random_seed_before_scribble_sampling"]))
    assert np.array_equal(scrib, REF[f"out.scribbles_raw__{name}"])
    assert np.array_equal(P.normalise_points(scrib, w, h), REF[f"out.scribbles_norm__{name}"])


def test_boundary_runs_through_background_pixels_of_padded_frame():
    mask = np.zeros((6, 8), np.uint8)
    mask[2:4, 3:6] = 1  # rows 2..3, cols 3..5
    pts = P.boundary_points(mask)
    assert pts[:, 0].min() == 3 and pts[:, 0].max() == 7  # left at first column, right two past the last
    assert pts[:, 1].min() == 2 and pts[:, 1].max() == 5
    assert P.polygon_points(np.zeros((5, 5), np.uint8), random.Random(0)) is None
    assert np.array_equal(P.scribble_points(np.zeros((5, 5)), np.random.RandomState(0)), np.zeros(40))


@pytest.mark.parametrize("case", sorted(META["reorder_scribbles"]))
def test_reorder_scribbles(case):
    ex = META["reorder_scribbles"][case]
    assert np.array_equal(P.reorder_scribble(ex["input"]), np.array(ex["output"]))


def test_box_helpers_and_attention_masks():
    for ex in META["inference_box_helpers"]:
        box = rescale_box(ex["xywh_pixels"], ex["width"], ex["height"])
        assert box == ex["rescale_box_xyxy_norm"]
        assert P.point_from_box(box) == ex["get_point_from_box"]
    att = np.stack([attention_mask_from_box(b, 64) for b in REF["in.att_boxes"]])
    assert np.array_equal(att, REF["out.att_masks_64"])


@pytest.mark.parametrize("shape", [(2, 3), (300, 400), (37, 1000), (700, 600), (512, 512)])
def test_resize_nearest_equals_pil_nearest(shape):
    from PIL import Image

    mask = (np.random.RandomState(shape[0]).rand(*shape) > 0.5).astype(np.uint8)
    pil = np.array(Image.fromarray(mask).resize((512, 512), resample=Image.Resampling.NEAREST))
    assert np.array_equal(resize_nearest(mask, 512), pil)


def test_layout_to_grounding_inputs_values():
    mask = np.zeros((300, 400), bool)
    mask[50:120, 60:200] = True
    layout = Layout(400, 300, "scene", [
        Instance("a", box=[10, 20, 100, 50]),
        Instance("b", mask=mask),
        Instance("c", point=[100, 30]),
        Instance("d", box=[0, 0, 40, 40], scribble=[[[4, 4], [8, 8]], [[20, 20]]]),
    ])
    emb = torch.randn(4, 768)
    g = P.layout_to_grounding_inputs(layout, emb, seed=7)
    assert {k: tuple(v.shape) for k, v in g.items()} == {
        "boxes": (1, 30, 4), "masks": (1, 30), "positive_embeddings": (1, 30, 768), "scribbles": (1, 30, 40),
        "polygons": (1, 30, 512), "segs": (1, 30, 512, 512), "points": (1, 30, 2)}
    assert g["masks"][0].tolist() == [1.0] * 4 + [0.0] * 26
    assert torch.equal(g["positive_embeddings"][0, :4], emb)
    assert g["boxes"][0, 0].tolist() == pytest.approx([0.025, 20 / 300, 0.275, 70 / 300])
    assert g["boxes"][0, 1].tolist() == pytest.approx([0.15, 50 / 300, 0.5, 0.4])  # mask extent
    assert g["boxes"][0, 2].tolist() == [0, 0, 0, 0] and g["points"][0, 2].tolist() == pytest.approx([0.25, 0.1])
    assert g["points"][0, 0].tolist() == pytest.approx([0.15, 45 / 300])
    expected_poly = P.normalise_points(P.polygon_points(mask.astype(np.uint8), random.Random(7)), 400, 300)
    assert np.allclose(g["polygons"][0, 1].numpy(), expected_poly.astype(np.float32))
    assert g["segs"][0, 1].sum() == float(resize_nearest(mask, 512).sum()) and g["segs"][0, 0].sum() == 0
    assert g["scribbles"][0, 3].tolist()[:2] == pytest.approx([0.01, 4 / 300])
    assert g["scribbles"][0, 1].abs().sum() > 0 and g["scribbles"][0, 0].abs().sum() == 0
    again = P.layout_to_grounding_inputs(layout, emb, seed=7)
    assert all(torch.equal(g[k], again[k]) for k in g)
    state = np.random.get_state()[1].copy(), random.getstate(), torch.random.get_rng_state()
    P.layout_to_grounding_inputs(layout, emb, seed=8)
    assert np.array_equal(np.random.get_state()[1], state[0]) and random.getstate() == state[1]
    with pytest.raises(InstDiffError, match=r"\(4, 768\)"):
        P.layout_to_grounding_inputs(layout, torch.zeros(3, 768))


def test_null_grounding_inputs_all_zero():
    g = P.null_grounding_inputs(2)
    assert g["segs"].shape == (2, 30, 512, 512) and all(float(v.abs().sum()) == 0 for v in g.values())


def test_polygon_rasterisation():
    m = rasterize_polygon([[[1, 1], [5, 1], [5, 4], [1, 4]]], 6, 8)
    assert m.sum() == 12 and m[1:4, 1:5].all()
