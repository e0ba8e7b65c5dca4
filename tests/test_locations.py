"""Location kinds (locations.py) drive schema, JSON, scaling, extent, raster, keyframes, drop config and drawing."""
# Also: the value checks and the one JSON decoder.
import dataclasses
import json

import numpy as np
import pytest

from instdiff_model import layout as L
from instdiff_model import locations as loc
from instdiff_model.constants import DropConfig
from instdiff_model.errors import InstDiffError
from instdiff_model.keyframes import interpolate_keyframes
from instdiff_model.position_net import DROP_CONFIGS, choose_drop_config
from instdiff_model.values import decode_json

W, H = 64, 48
_MASK = np.zeros((H, W), bool)
_MASK[10:20, 30:50] = True
SAMPLES = {  # one value per kind in a W x H image; a new kind needs one here
    "box": [4, 6, 20, 10],
    "point": [30, 40],
    "scribble": [[[1, 2], [10, 12]], [[5, 5], [6, 7], [60, 47]]],
    "polygon": [[2, 2], [40, 2], [20, 30]],
    "mask": _MASK,
}


def one(key, value=None, **extra):
    return L.Layout(W, H, "", [L.Instance(caption=key, **{key: SAMPLES[key] if value is None else value}, **extra)])


def test_every_kind_has_a_field_a_sample_and_a_place_in_every_order():
    fields = [f.name for f in dataclasses.fields(L.Instance)]
    assert fields == ["caption", *loc.KEYS, "color", "weight"]
    assert L._INSTANCE_KEYS == set(fields)
    assert sorted(SAMPLES) == sorted(loc.KEYS)
    assert sorted(k.key for k in loc.SHAPE_ORDER) == sorted(loc.KEYS)
    assert all(kind.drop_config in DROP_CONFIGS for kind in loc.KINDS)
    assert loc.CHOICES == "a box, point, scribble, polygon or mask"


def test_drop_configs_and_origins_keep_their_json_values():
    """The names workflows (the tokenizer's config) and the editor (an instance's origin) store stay as they were."""
    assert sorted(DropConfig) == ["box", "point", "scribble", "sd15"] and set(DROP_CONFIGS) == set(DropConfig)
    assert choose_drop_config(one("point")) == "point" and type(choose_drop_config(one("box")).value) is str
    assert [o.value for o in L.Origin] == ["seed", "edited", "user"]
    shown = L.with_origins(one("box"), [(L.Origin.EDITED, 3)])
    assert json.loads(json.dumps(shown))["instances"][0] == {"caption": "box", "box": [4.0, 6.0, 20.0, 10.0],
                                                             "origin": "edited", "seed": 3}
    assert type(shown["instances"][0]["origin"]) is str


@pytest.mark.parametrize("key", loc.KEYS)
def test_every_kind_round_trips_json_and_scales_into_the_image(key):
    lay = one(key)
    value = getattr(lay.instances[0], key)
    back = L.Layout.from_json(json.loads(lay.to_json()))
    assert back.to_json() == lay.to_json()
    same = loc.scale_instance(lay.instances[0], W, H, W, H)
    assert same is not lay.instances[0] and getattr(same, key) is value
    for w, h in ((2 * W, 2 * H), (W // 2, H // 3), (17, 90)):
        scaled = L.Layout(w, h, "", [loc.scale_instance(lay.instances[0], W, H, w, h)])  # validates: inside the image
        ext = loc.instance_extent(scaled.instances[0])
        assert ext is None or (0 <= ext[0] <= ext[2] <= w and 0 <= ext[1] <= ext[3] <= h)


def test_scaling_keeps_a_minimum_box_size():
    inst = L.Instance("a", box=(60.0, 40.0, 4.0, 8.0), point=(64.0, 0.0))
    scaled = loc.scale_instance(inst, W, H, 32, 24)
    assert scaled.box == (30.0, 20.0, 2.0, 4.0) and scaled.point == (32.0, 0.0)
    thin = loc.scale_instance(L.Instance("b", box=(10.0, 0.0, 0.004, 1.0)), W, H, 8, 6)
    assert thin.box == (1.25, 0.0, 1e-3, 0.125)


def test_extent_and_raster_follow_the_shape_order():
    poly = one("polygon").instances[0]
    assert loc.instance_extent(poly) == (2.0, 2.0, 40.0, 30.0)
    assert loc.instance_mask(poly, H, W).sum() > 0
    both = L.Layout(W, H, "", [L.Instance("b", box=SAMPLES["box"], mask=_MASK, polygon=SAMPLES["polygon"])]).instances[0]
    assert loc.instance_extent(both) == (4.0, 6.0, 24.0, 16.0)  # the box first
    assert loc.instance_mask(both, H, W) is both.mask  # the mask before the rasterised polygon
    assert loc.instance_extent(dataclasses.replace(both, box=None)) == (30.0, 10.0, 50.0, 20.0)
    assert loc.instance_extent(one("point").instances[0]) is None
    assert loc.instance_mask(one("box").instances[0], H, W) is None
    assert loc.instance_mask(one("scribble").instances[0], H, W) is None


def test_boxes_and_points_move_between_keyframes_other_kinds_hold():
    a = L.Layout(W, H, "", [L.Instance("x", box=[0, 0, 10, 10], point=[0, 0], polygon=SAMPLES["polygon"])])
    b = L.Layout(W, H, "", [L.Instance("x", box=[20, 10, 10, 20], point=[40, 20], polygon=[[1, 1], [5, 1], [3, 3]],
                                       scribble=SAMPLES["scribble"])])
    mid = interpolate_keyframes([(0, a), (2, b)], 3)[1].instances[0]
    assert mid.box == (10.0, 5.0, 10.0, 15.0) and mid.point == (20.0, 10.0)
    assert mid.polygon == a.instances[0].polygon and mid.scribble is None


@pytest.mark.parametrize("key", loc.KEYS)
def test_each_kind_picks_its_drop_config_and_the_config_keeps_it(key):
    kind = next(k for k in loc.KINDS if k.key == key)
    assert choose_drop_config(one(key)) == kind.drop_config
    flags = dict(zip(("box", "point", "scribble", "mask"), DROP_CONFIGS[kind.drop_config]))
    assert not flags[{"polygon": "mask"}.get(key, key)]


class Recorder:
    """A painter that records what it is asked to draw."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args)) or ((99, 98) if name == "dot" else None)


def test_drawing_goes_through_the_painter_with_its_label_anchor():
    inst = L.Layout(W, H, "", [L.Instance("a", **SAMPLES)]).instances[0]
    paint = Recorder()
    assert loc.draw_instance(inst, paint) == (4.0, 6.0)  # the box's corner
    assert [c[0] for c in paint.calls] == ["rect", "tint", "polygon", "stroke", "stroke", "dot"]
    anchors = {key: loc.draw_instance(one(key).instances[0], Recorder()) for key in loc.KEYS}
    assert anchors == {"box": (4.0, 6.0), "point": (99, 98), "scribble": (1.0, 2.0), "polygon": (2.0, 2.0),
                       "mask": (30, 10)}


def test_one_json_decoder_with_each_callers_wording():
    assert decode_json('{"a": [1]}', "x") == {"a": [1]} and decode_json({"a": 1}, "x") == {"a": 1}
    with pytest.raises(InstDiffError, match=r"^layout is not valid JSON: Expecting"):
        decode_json("{", "layout")
    with pytest.raises(InstDiffError, match=r"^boxes: not valid JSON \(.*\); give a list of boxes$"):
        decode_json(b"[" * 100000, "boxes", "{what}: not valid JSON ({exc}); give a list of boxes")


def test_value_checks():
    from instdiff_model.values import is_int, is_number, number, short
    assert is_int(3) and not is_int(True) and is_number(2.5) and number(2, "x") == 2.0 and short("x" * 99).endswith("...")
