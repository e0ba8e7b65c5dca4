"""Property fuzzing (hypothesis) of preprocessing, the importers and the instance tokenizer."""
# Layout JSON parsing is fuzzed in test_layout.py (test_any_json_like_value_gives_layout_or_instdiff_error).
# Targets here, >= 1000 generated cases each except the tokenizer (a full-size forward with masks costs seconds
# on CPU, so it gets 15 cases):
#   * layout_to_grounding_inputs on random VALID layouts (boxes, points, scribbles, polygons, masks): every one
#     preprocesses (no error at all); every output is finite and the normalised ones lie in [0, 1];
#   * from_official_demo / from_coco on random JSON-ish data: a Layout or an InstDiffError, nothing else;
#   * InstanceTokenizer (formula-filled, built once a session) on random valid layouts: finite (1, 184, 768) tokens.
import json
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instdiff_model.constants import N_GROUNDING as NUM_TOKENS
from instdiff_model.errors import InstDiffError
from instdiff_model.importers import from_coco, from_official_demo
from instdiff_model.layout import Instance, Layout
from instdiff_model.preprocess import layout_to_grounding_inputs
from instdiff_model.rle import rle_encode
from instdiff_model.position_net import choose_drop_config

# INSTDIFF_FUZZ_EXAMPLES overrides the case count (e.g. 100 for a quick local pass). Slow by design: 1000 cases per
# target (~10-20 s each on one core) is what finds the rare layouts; the tokenizer's 15 share one formula tokenizer.
FUZZ = settings(max_examples=int(os.environ.get("INSTDIFF_FUZZ_EXAMPLES", 1000)), deadline=None, suppress_health_check=list(HealthCheck))


# ---------------------------------------------------------------- valid layouts

@st.composite
def valid_instance(draw, w, h):
    fields = draw(st.sets(st.sampled_from(["box", "point", "scribble", "polygon", "mask"]), min_size=1, max_size=3))
    frac = st.floats(0, 1, allow_nan=False)

    def xy():
        return (draw(frac) * w, draw(frac) * h)

    inst = Instance(caption=draw(st.text(min_size=1, max_size=6).filter(str.strip)))
    if "box" in fields:
        x, y = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
        bw, bh = draw(st.integers(1, w - x)), draw(st.integers(1, h - y))
        shift = draw(st.sampled_from([0.0, 0.5]))  # fractional pixels too
        inst.box = [x + shift, y, bw - shift, bh]
    if "point" in fields:
        inst.point = xy()
    if "scribble" in fields:
        inst.scribble = [[xy() for _ in range(draw(st.integers(1, 30)))] for _ in range(draw(st.integers(1, 3)))]
    if "polygon" in fields:
        inst.polygon = [[xy() for _ in range(draw(st.integers(3, 8)))] for _ in range(draw(st.integers(1, 2)))]
    if "mask" in fields:
        rng = np.random.RandomState(draw(st.integers(0, 2**31)))
        kind = draw(st.sampled_from(["noise", "rect", "pixel", "full"]))
        m = np.zeros((h, w), bool)
        if kind == "noise":
            m = rng.rand(h, w) < draw(st.floats(0.01, 0.9))
        elif kind == "rect":
            y0, x0 = rng.randint(0, h), rng.randint(0, w)
            m[y0:y0 + rng.randint(1, h + 1), x0:x0 + rng.randint(1, w + 1)] = True
        elif kind == "full":
            m[:] = True
        m[rng.randint(0, h), rng.randint(0, w)] = True  # never empty
        inst.mask = m if draw(st.booleans()) else rle_encode(m)
    return inst


@st.composite
def valid_layout(draw, max_instances=5, max_side=48):
    w, h = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    n = draw(st.integers(0, max_instances))
    instances = [draw(valid_instance(w, h)) for _ in range(n)]
    return Layout(width=w, height=h, caption=draw(st.text(max_size=5)), instances=instances)


def _check_inputs(layout, out):
    """Only the first n slots are inspected in full (the 30x512x512 segs dominate the cost otherwise)."""
    n = len(layout.instances)
    for name, t in out.items():
        assert t.dtype == torch.float32 and t.shape[:2] == (1, 30), name
        if name != "segs":  # segs: bounds below (NaN fails them too)
            assert torch.isfinite(t[0, :n]).all(), name
            assert not t[0, n:].any(), f"{name}: slots after the last instance must stay zero"
    for name in ("boxes", "points", "scribbles", "polygons", "masks"):
        t = out[name][0, :n]
        assert t.numel() == 0 or (t.min() >= 0 and t.max() <= 1), f"{name} not normalised: {t}"
    if n:
        lo, hi = out["segs"][0, :n].aminmax()
        assert lo >= 0 and hi <= 1, "segs must be 0/1 masks"
    assert out["masks"][0, :n].eq(1).all()
    boxes = out["boxes"][0, :n]
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()


@FUZZ
@given(valid_layout(), st.integers(0, 2**32 - 1))
def test_preprocessing_of_valid_layouts(layout, seed):
    emb = torch.randn(len(layout.instances), 768, generator=torch.Generator().manual_seed(seed % 1000))
    _check_inputs(layout, layout_to_grounding_inputs(layout, emb, seed))  # a valid layout is never refused


# ---------------------------------------------------------------- importers on JSON-ish data

scalar = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=6)
json_values = st.recursive(
    scalar, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4), max_leaves=12)
num = st.integers(-50, 700) | st.floats(-50, 700, allow_nan=False) | st.floats(allow_nan=True)
dims = st.integers(-2, 80) | json_values
box = st.lists(num, min_size=4, max_size=4) | st.lists(num, max_size=6) | json_values
pts = st.lists(st.lists(num, min_size=2, max_size=2) | st.lists(num, max_size=3), max_size=5)
rle = st.fixed_dictionaries({"size": st.lists(st.integers(0, 80), min_size=2, max_size=2) | json_values,
                             "counts": st.text(alphabet="0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmno", max_size=8)
                             | st.lists(st.integers(-1, 3000), max_size=5) | json_values})
caption = st.text(max_size=6) | json_values

demo_anno = st.fixed_dictionaries({}, optional={
    "caption": caption, "category_name": caption, "bbox": box, "mask": st.just([]) | rle | json_values,
    "point": st.lists(num, max_size=3) | json_values, "scribble": pts | st.lists(pts, max_size=2) | json_values})
demo = st.fixed_dictionaries({}, optional={
    "caption": caption, "width": dims, "height": dims,
    "annos": st.lists(demo_anno | json_values, max_size=4) | json_values})

# COCO ids: JSON scalars, and lists / dicts (unhashable; see test_coco_unhashable_ids_give_a_layout_or_instdiff_error)
coco_id = (st.none() | st.booleans() | st.integers(-2, 3) | st.floats(allow_nan=True) | st.text(max_size=2)
           | st.lists(st.integers(0, 2), max_size=2) | st.dictionaries(st.text(max_size=1), st.integers(0, 2), max_size=1))
segmentation = st.lists(st.lists(num, max_size=9) | json_values, max_size=3) | rle | json_values
coco_ann = st.fixed_dictionaries({"image_id": coco_id | st.just(1)}, optional={
    "category_id": coco_id, "caption": caption, "bbox": box, "segmentation": segmentation})
coco_image = st.fixed_dictionaries({"id": coco_id | st.just(1)}, optional={"width": dims, "height": dims}) | json_values
coco = st.fixed_dictionaries({}, optional={
    "images": st.lists(coco_image, min_size=1, max_size=3) | json_values,
    "annotations": st.lists(coco_ann | json_values, max_size=5) | json_values,
    "categories": st.lists(st.fixed_dictionaries({"id": coco_id, "name": caption}) | scalar, max_size=3)})


def _layout_or_instdiff_error(fn, *args, **kwargs):
    notes = []
    try:
        layout = fn(*args, notes=notes, **kwargs)
    except InstDiffError as exc:
        assert str(exc)
        return
    assert isinstance(layout, Layout) and len(layout.instances) <= 30
    assert all(isinstance(n, str) and n for n in notes)
    assert Layout.from_json(layout.to_json()).to_json() == layout.to_json()


@FUZZ
@given(demo | demo.map(json.dumps) | json_values | st.text(max_size=12))
def test_official_demo_importer_gives_layout_or_instdiff_error(data):
    _layout_or_instdiff_error(from_official_demo, data)


@FUZZ
@given(coco | coco.map(json.dumps) | json_values, st.none() | st.integers(-1, 3))
def test_coco_importer_gives_layout_or_instdiff_error(data, image_id):
    _layout_or_instdiff_error(from_coco, data, image_id=image_id)


# ---------------------------------------------------------------- tokenizer

@pytest.fixture(scope="module")
def tokenizer(formula_tokenizer):
    return formula_tokenizer


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_tokenizer_gives_finite_tokens_for_every_valid_layout(tokenizer, data):
    """15 cases only: a forward with masks runs ConvNeXt-T on 512x512 inputs (seconds on CPU)."""
    layout = data.draw(valid_layout(max_instances=4, max_side=32))
    drop = data.draw(st.sampled_from([choose_drop_config(layout), "sd15", "box", "point", "scribble"]))
    emb = torch.randn(len(layout.instances), 768, generator=torch.Generator().manual_seed(len(layout.instances)))
    inputs = layout_to_grounding_inputs(layout, emb, 0)
    with torch.no_grad():
        objs, _ = tokenizer(**inputs, drop=drop)
    assert objs.shape == (1, NUM_TOKENS, 768) and torch.isfinite(objs).all()


@pytest.mark.parametrize("data", [
    {"images": [{"id": 1, "width": 8, "height": 8}], "annotations": [], "categories": [{"id": [1], "name": "x"}]},
    {"images": [{"id": 1, "width": 8, "height": 8}], "annotations": [{"image_id": 1, "category_id": {}, "bbox": [0, 0, 2, 2]}]},
    {"images": [{"id": 1, "width": 8, "height": 8}], "annotations": [], "categories": 5},
])
def test_coco_unhashable_ids_give_a_layout_or_instdiff_error(data):
    """A list/dict category id or a non-list 'categories' once escaped as TypeError."""
    try:
        layout = from_coco(data)
    except InstDiffError:
        return
    assert layout.width == 8 and all(inst.caption for inst in layout.instances)
