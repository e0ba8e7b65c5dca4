"""InstanceDiffusion Layout seeded from a connected layout (seed_layout): merge rules and a host run."""
import importlib
import json

import numpy as np
import pytest
from PIL import Image

from scripts.headless import PromptBuilder

SEED = [{"caption": "a cat", "box": [10, 10, 40, 30]}, {"caption": "a dog", "box": [60, 60, 50, 40]},
        {"caption": "a bird", "point": [100, 20]}]


def doc(instances, width=128, height=128, caption="", **extra):
    return json.dumps({"schema": "instdiff.layout", "version": 1, "width": width, "height": height,
                       "caption": caption, "instances": instances, **extra})


@pytest.fixture(scope="module")
def mods(pack):
    return (importlib.import_module(pack.__name__ + ".nodes.layout"),
            importlib.import_module(pack.__name__ + ".instdiff_model.layout"),
            importlib.import_module(pack.__name__ + ".instdiff_model.errors"))


@pytest.fixture
def seed(mods):
    return [mods[1].Layout.from_json(doc(SEED, caption="seed scene"))]


def build(mods, layout_json, seed_layout, width=128, height=128, caption=""):
    out = mods[0].InstanceLayoutNode().build(width, height, caption, layout_json, seed_layout=seed_layout)
    return out


def boxes(layout):
    return [(i.caption, i.box, i.point) for i in layout.instances]


def test_optional_input_does_not_add_a_widget(mods):
    spec = mods[0].InstanceLayoutNode.INPUT_TYPES()
    assert list(spec["required"]) == ["width", "height", "caption", "layout_json"]
    assert spec["optional"]["seed_layout"][0] == "INSTANCE_LAYOUT"


def test_untouched_seed_passes_through_with_its_size_and_caption(mods, seed):
    out = build(mods, doc([]), seed, width=512, height=512)
    (layout,) = out["result"][0]
    assert (layout.width, layout.height, layout.caption) == (128, 128, "seed scene")
    assert [i.caption for i in layout.instances] == ["a cat", "a dog", "a bird"]
    shown = out["ui"]["instdiff_layout"][0]
    assert shown["layout_json"] == doc([])
    assert [(i["origin"], i["seed"], i["box"] if "box" in i else i["point"]) for i in shown["layout"]["instances"]] \
        == [("seed", 0, [10, 10, 40, 30]), ("seed", 1, [60, 60, 50, 40]), ("seed", 2, [100, 20])]


def test_edits_replace_seeds_removed_ones_go_and_own_ones_follow(mods, seed):
    text = doc([{"caption": "a moved dog", "box": [0, 0, 50, 40], "seed": 1},
                {"caption": "my tree", "box": [90, 90, 20, 20]}], seed_removed=[2], caption="mine")
    out = build(mods, text, seed)
    (layout,) = out["result"][0]
    assert layout.caption == "mine"
    assert boxes(layout) == [("a cat", (10, 10, 40, 30), None), ("a moved dog", (0, 0, 50, 40), None),
                             ("my tree", (90, 90, 20, 20), None)]
    shown = out["ui"]["instdiff_layout"][0]["layout"]["instances"]
    assert [(i["caption"], i["origin"], i.get("seed")) for i in shown] == [
        ("a cat", "seed", 0), ("a moved dog", "edited", 1), ("my tree", "user", None)]


def test_user_edits_stay_on_top_when_the_seed_changes(mods):
    L = mods[1].Layout
    text = doc([{"caption": "edited", "box": [1, 1, 10, 10], "seed": 0},
                {"caption": "edit of a vanished seed", "point": [5, 5], "seed": 7}], seed_removed=[1])
    new_seed = [L.from_json(doc([{"caption": "c0", "box": [0, 0, 8, 8]}, {"caption": "c1", "box": [0, 0, 9, 9]},
                                 {"caption": "c2 new", "box": [20, 20, 9, 9]}]))]
    out = build(mods, text, new_seed)
    (layout,) = out["result"][0]
    assert [i.caption for i in layout.instances] == ["edited", "c2 new", "edit of a vanished seed"]
    # the edit of a vanished seed is the user's now; its record keeps the index so the editor writes it back
    shown = out["ui"]["instdiff_layout"][0]["layout"]["instances"]
    assert [(i["origin"], i.get("seed")) for i in shown] == [("edited", 0), ("seed", 2), ("user", 7)]


def test_seed_is_scaled_to_the_node_size_once_edited(mods, seed):
    text = doc([{"caption": "mine", "point": [10, 10]}], width=256, height=64)
    (layout,) = build(mods, text, seed, width=256, height=64)["result"][0]
    assert (layout.width, layout.height) == (256, 64)
    assert layout.instances[0].box == pytest.approx((20, 5, 80, 15))
    assert layout.instances[2].point == pytest.approx((200, 10))


def test_seed_masks_are_resampled(mods):
    L, I = mods[1].Layout, mods[1].Instance
    m = np.zeros((64, 64), bool)
    m[16:32, 8:24] = True
    seed = [L(width=64, height=64, instances=[I(caption="blob", mask=m)])]
    (layout,) = build(mods, doc([{"caption": "x", "point": [1, 1]}]), seed)["result"][0]
    big = layout.instances[0].mask
    assert big.shape == (128, 128) and big[32:64, 16:48].all() and big.sum() == 32 * 32


def test_multi_frame_seed_merges_every_frame(mods):
    L = mods[1].Layout
    frames = [L.from_json(doc([{"caption": "ball", "box": [x, 10, 20, 20]}])) for x in (0, 50)]
    out = build(mods, doc([{"caption": "sun", "point": [100, 5]}]), frames)
    assert [len(f.instances) for f in out["result"][0]] == [2, 2]
    assert out["result"][0][1].instances[0].box[0] == 50


def test_without_seed_the_seed_fields_are_ignored(mods):
    text = doc([{"caption": "a", "box": [1, 1, 5, 5], "seed": 0}], seed_removed=[1])
    out = build(mods, text, None)
    (layout,) = out["result"][0]
    assert [i.caption for i in layout.instances] == ["a"]
    assert [(i["origin"], i["box"]) for i in out["ui"]["instdiff_layout"][0]["layout"]["instances"]] == [
        ("user", [1, 1, 5, 5])]


@pytest.mark.parametrize("extra, inst, pattern", [
    ({"seed_removed": "1"}, {"caption": "a", "box": [1, 1, 5, 5]}, "seed_removed\" must be a list"),
    ({"seed_removed": [-1]}, {"caption": "a", "box": [1, 1, 5, 5]}, "seed_removed: \"seed\" must be the index"),
    ({}, {"caption": "a", "box": [1, 1, 5, 5], "seed": "x"}, "instance 0: \"seed\" must be the index"),
])
def test_bad_seed_records_name_the_fix(mods, seed, extra, inst, pattern):
    with pytest.raises(mods[2].InstDiffError, match=pattern):
        build(mods, doc([inst], **extra), seed)


def test_host_detections_seed_the_layout_node(host):
    b = PromptBuilder()
    dets = b.add("InstanceDiffusionLayoutFromDetections", width=128, height=96, caption="detected", captions="",
                 box_format="xywh", out_of_image="clamp", min_score=0.0, mask_threshold=0.5, segs_masks=True, frame=0,
                 boxes_json=json.dumps([{"bbox": [8, 8, 40, 30], "label": "a cat"},
                                        {"bbox": [70, 50, 40, 30], "label": "a dog"},
                                        {"bbox": [70, 8, 40, 30], "label": "a bird"}]))
    text = doc([{"caption": "a moved cat", "box": [8, 56, 40, 30], "seed": 0},
                {"caption": "a sun", "point": [60, 10]}], width=128, height=96, seed_removed=[2])
    layout = b.add("InstanceDiffusionLayout", width=128, height=96, caption="", layout_json=text,
                   seed_layout=dets[0])
    preview = b.add("InstanceDiffusionLayoutPreview", layout=layout[0])
    save = b.add("SaveImage", images=preview[0], filename_prefix="seeded_layout")
    entry = host.run(b.prompt)
    ui = entry["outputs"][str(layout)]["instdiff_layout"][0]
    assert ui["layout_json"] == text
    assert [(i["caption"], i["origin"]) for i in ui["layout"]["instances"]] == [
        ("a moved cat", "edited"), ("a dog", "seed"), ("a sun", "user")]
    (path,) = host.output_files(entry, save)
    pic = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert pic.shape == (96, 128, 3)
    grey = np.array([48, 48, 48])
    red, green = np.array([0xe6, 0x19, 0x4b]), np.array([0x3c, 0xb4, 0x4b])
    # 0: the moved cat (left edge of its new box), 1: the untouched dog, the bird is gone, 2: the sun point
    assert np.abs(pic[75, 8] - red).max() < 40
    assert np.abs(pic[75, 70] - green).max() < 40
    assert np.abs(pic[20, 70] - grey).max() <= 2 and np.abs(pic[20, 109] - grey).max() <= 2
    assert np.abs(pic[20, 8] - grey).max() <= 2   # the cat's old place is empty
