"""Layout validation messages, JSON round trip, importers (demo JSON, COCO incl. RLE), fuzzed parsing."""
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instdiff_model.errors import InstDiffError
from instdiff_model.importers import from_coco, from_official_demo
from instdiff_model.layout import Instance, Layout
from instdiff_model.rle import rle_decode, rle_encode


def doc(*instances, width=512, height=256, **extra):
    return {"schema": "instdiff.layout", "version": 1, "width": width, "height": height, "caption": "scene",
            "instances": list(instances), **extra}


GOOD = {"caption": "a cat", "box": [10, 20, 100, 50]}


@pytest.mark.parametrize("inst, pattern", [
    ({"caption": "a", "box": [500, 0, 40, 10]}, r"instance 1 box: .* outside the 512x256 image"),
    ({"caption": "a", "box": [5, 5, 0, 10]}, r"instance 1 box: zero or negative area"),
    ({"caption": "a", "box": [5, 5, 10]}, r"instance 1 box: expected \[x, y, width, height\]"),
    ({"caption": "a", "point": [600, 5]}, r"instance 1 point: \(600, 5\) lies outside .* move it inside"),
    ({"caption": "a", "polygon": [[0, 0], [5, 5]]}, r"instance 1 polygon ring 0: has 2 point\(s\), a polygon needs at least 3"),
    ({"caption": "a", "scribble": [[1, 1], [-3, 2]]}, r"instance 1 scribble stroke 0: \(-3, 2\) lies outside"),
    ({"caption": "a", "mask": {"size": [256, 512], "counts": [256 * 512]}}, r"instance 1 mask: empty \(all zero\)"),
    ({"caption": "a", "mask": {"size": [64, 64], "counts": [4096]}}, r"instance 1 mask: mask is 64x64 .* image is 256x512; resize"),
    ({"caption": "a", "mask": {"size": [256, 512], "counts": [5, 5]}}, r"instance 1 mask: RLE run lengths sum to 10"),
    ({"caption": "  ", "box": [0, 0, 5, 5]}, r"instance 1 caption: empty"),
    ({"caption": "a"}, r"instance 1 \('a'\): no location; give a box, point, scribble, polygon or mask"),
    ({"caption": "a", "box": [0, 0, 5, 5], "color": "red"}, r"instance 1 color: expected '#rrggbb'"),
    ({"caption": "a", "box": [0, 0, 5, 5], "size": 3}, r"instance 1: unknown field\(s\) \['size'\]"),
    ({"caption": "a", "box": [0, float("nan"), 5, 5]}, r"instance 1 box: expected a finite number"),
])
def test_validation_names_index_field_and_fix(inst, pattern):
    with pytest.raises(InstDiffError, match=pattern):
        Layout.from_json(doc(GOOD, inst))


@pytest.mark.parametrize("inst,index,field", [
    ({"caption": "a", "box": [0, 0, 600, 10]}, 1, "box"),
    ({"caption": "a", "scribble": [[[0, 0], [900, 9]]]}, 1, "scribble"),
    ({"caption": "a", "mask": {"size": [256, 512], "counts": [10]}}, 1, "mask"),
    ({"caption": " ", "box": [0, 0, 9, 9]}, 1, "caption"),
    ({"caption": "a", "box": [0, 0, 9, 9], "color": "red"}, 1, "color"),
    ({"caption": "a", "box": [0, 0, 9, 9], "weight": "x"}, 1, "weight"),
    ({"caption": "a", "box": [0, 0, 9, 9], "weight": 4}, 1, "weight"),
    ({"caption": "a"}, 1, None),
    ({"caption": "a", "size": 3}, 1, None),
    (["not", "an object"], 1, None),
])
def test_errors_carry_the_instance_index_and_field(inst, index, field):
    """Callers re-label an error by its index / field, never by parsing its text; its text still names both."""
    with pytest.raises(InstDiffError) as info:
        Layout.from_json(doc(GOOD, inst))
    assert (info.value.index, info.value.field) == (index, field)
    assert str(info.value).startswith(f"instance {index}" + (f" {field}" if field else ""))
    relabeled = info.value.relabeled("BBOX item 3")
    assert str(relabeled) == f"BBOX item 3: {info.value}" and (relabeled.index, relabeled.field) == (index, field)
    with pytest.raises(InstDiffError) as info:
        Layout.from_json(doc(*[GOOD] * 31))
    assert (info.value.index, info.value.field) == (None, None)


def test_too_many_instances_version_schema_and_json_errors():
    with pytest.raises(InstDiffError, match="InstanceDiffusion supports at most 30 instances; remove 2"):
        Layout.from_json(doc(*[GOOD] * 32))
    with pytest.raises(InstDiffError, match="unknown layout schema version 2; this build reads version 1"):
        Layout.from_json({**doc(GOOD), "version": 2})
    with pytest.raises(InstDiffError, match='"schema" must be "instdiff.layout"'):
        Layout.from_json({**doc(GOOD), "schema": "other"})
    with pytest.raises(InstDiffError, match="not valid JSON"):
        Layout.from_json('{"schema": ')
    with pytest.raises(InstDiffError, match="width/height must be integers"):
        Layout.from_json(doc(GOOD, width=0))
    assert len(Layout.from_json(doc(*[GOOD] * 30)).instances) == 30


def test_json_round_trip_all_fields():
    mask = np.zeros((256, 512), bool)
    mask[10:40, 100:180] = True
    mask[200:, 500:] = True
    layout = Layout(512, 256, "a room", [
        Instance("cat", box=[1.5, 2, 100, 50], point=[30, 20], color="#ff8800"),
        Instance("rug", polygon=[[[0, 0], [50, 0], [25, 40]], [[100, 100], [120, 100], [110, 130]]]),
        Instance("lamp", scribble=[[[5, 5], [6, 7]], [[9, 9]]], mask=mask),
    ])
    text = layout.to_json()
    back = Layout.from_json(text)
    assert back.to_json() == text
    assert json.loads(text)["instances"][0] == {"caption": "cat", "box": [1.5, 2.0, 100.0, 50.0], "point": [30.0, 20.0], "color": "#ff8800"}
    assert np.array_equal(back.instances[2].mask, mask)
    assert back.instances[1].polygon[1] == [(100.0, 100.0), (120.0, 100.0), (110.0, 130.0)]
    assert back.instances[2].scribble == [[(5.0, 5.0), (6.0, 7.0)], [(9.0, 9.0)]]
    single = Layout.from_json(doc({"caption": "s", "scribble": [[1, 1], [2, 2]], "polygon": [[0, 0], [9, 0], [0, 9]]}))
    assert single.instances[0].scribble == [[(1.0, 1.0), (2.0, 2.0)]] and len(single.instances[0].polygon) == 1


def test_rle_codec_matches_coco_conventions():
    m = np.array([[0, 1, 1], [0, 1, 0]], bool)  # column-major: 0,0 | 1,1 | 1,0 -> runs 2,3,1
    rle = rle_encode(m)
    assert rle["size"] == [2, 3]
    assert np.array_equal(rle_decode({"size": [2, 3], "counts": [2, 3, 1]}, 2, 3), m)
    assert np.array_equal(rle_decode(rle, 2, 3), m)
    assert rle_decode({"size": [1, 2], "counts": [0, 2]}, 1, 2).tolist() == [[True, True]]
    rng = np.random.RandomState(0)
    for _ in range(20):
        big = rng.rand(37, 53) > rng.rand()
        assert np.array_equal(rle_decode(rle_encode(big), 37, 53), big)
    # a known pycocotools string: 3x3 with the centre pixel set -> runs [4, 1, 4] -> "41" "1" "4"+delta
    assert rle_encode(np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], bool))["counts"] == "414"


def test_official_demo_import():
    demo = {
        "caption": "a corgi", "width": 512, "height": 512,
        "annos": [
            {"bbox": [95, 54, 312, 316], "mask": [], "category_name": "dog", "caption": "a corgi"},
            {"bbox": [0, 228, 763, 125], "mask": rle_encode(np.pad(np.ones((10, 10), bool), ((0, 502), (0, 502)))),
             "category_name": "counter", "caption": ""},
            {"category_name": "tree", "caption": "a palm", "point": [255.5, 370.5]},
            {"bbox": [0, 512, 0, 0], "mask": [], "caption": "whole painting"},
            {"bbox": [10, 10, 20, 20], "caption": "s", "scribble": [[12, 12], [20, 25]]},
        ],
    }
    notes = []
    layout = from_official_demo(json.dumps(demo), notes)
    assert [i.caption for i in layout.instances] == ["a corgi", "counter", "a palm", "s"]
    assert layout.instances[1].box == (0.0, 228.0, 512.0, 125.0) and layout.instances[1].mask.sum() == 100
    assert layout.instances[2].point == (255.5, 370.5) and layout.instances[2].box is None
    assert layout.instances[3].scribble == [[(12.0, 12.0), (20.0, 25.0)]]
    assert any("clamped" in n for n in notes) and any("skipped" in n for n in notes)


def test_coco_import_polygons_and_both_rle_forms():
    m = np.zeros((40, 60), bool)
    m[5:15, 10:30] = True
    runs = [int(c) for c in np.diff(np.concatenate([[0], np.flatnonzero(np.diff(m.T.ravel())) + 1, [m.size]]))]
    coco = {
        "images": [{"id": 7, "width": 60, "height": 40}, {"id": 8, "width": 10, "height": 10}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {"image_id": 7, "category_id": 1, "bbox": [10, 5, 20, 10], "segmentation": [[10, 5, 30, 5, 30, 15, 10, 15]]},
            {"image_id": 7, "category_id": 2, "bbox": [10, 5, 20, 10], "segmentation": {"size": [40, 60], "counts": runs}},
            {"image_id": 7, "category_id": 2, "bbox": [10, 5, 50.2, 10], "segmentation": rle_encode(m)},
            {"image_id": 8, "category_id": 1, "bbox": [0, 0, 5, 5], "segmentation": []},
        ],
    }
    layout = from_coco(coco, image_id=7)
    assert (layout.width, layout.height, layout.caption) == (60, 40, "cat, dog, dog")
    assert layout.instances[0].polygon == [[(10.0, 5.0), (30.0, 5.0), (30.0, 15.0), (10.0, 15.0)]]
    assert np.array_equal(layout.instances[1].mask, m) and np.array_equal(layout.instances[2].mask, m)
    assert layout.instances[2].box == (10.0, 5.0, 50.0, 10.0)
    with pytest.raises(InstDiffError, match="pass image_id"):
        from_coco(coco)
    with pytest.raises(InstDiffError, match="no image with id 9"):
        from_coco(coco, image_id=9)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)
coord = st.one_of(st.integers(-20, 600), st.floats(-5, 600), st.just(None), st.text(max_size=2))
instance_like = st.fixed_dictionaries({"caption": st.one_of(st.text(max_size=5), st.integers(), st.none())}, optional={
    "box": st.lists(coord, min_size=0, max_size=5),
    "point": st.lists(coord, max_size=3),
    "scribble": st.lists(st.lists(st.lists(coord, max_size=3), max_size=3) | st.lists(coord, max_size=3), max_size=3),
    "polygon": st.lists(st.lists(coord, max_size=3), max_size=4),
    "mask": st.one_of(json_values, st.fixed_dictionaries({"size": st.lists(st.integers(0, 70), max_size=3),
                                                          "counts": st.one_of(st.text(max_size=6), st.lists(st.integers(-2, 5000), max_size=4))})),
    "color": st.one_of(st.text(max_size=7), st.just("#a0b1c2")),
})
layout_like = st.fixed_dictionaries(
    {"schema": st.sampled_from(["instdiff.layout", "x"]), "version": st.sampled_from([1, 1, 2, True, 1.0])},
    optional={"width": st.one_of(st.integers(-2, 600), json_values), "height": st.one_of(st.integers(-2, 70), json_values),
              "caption": json_values, "instances": st.lists(instance_like, max_size=4) | json_values},
)


@settings(max_examples=1200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(json_values, layout_like, layout_like.map(json.dumps), st.text(max_size=20)))
def test_any_json_like_value_gives_layout_or_instdiff_error(value):
    try:
        layout = Layout.from_json(value)
    except InstDiffError as exc:
        assert str(exc)
        return
    assert isinstance(layout, Layout) and len(layout.instances) <= 30
    assert Layout.from_json(layout.to_json()).to_json() == layout.to_json()
