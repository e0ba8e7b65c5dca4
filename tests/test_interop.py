"""Interop: detections from other packs -> layout, and layout -> core BOUNDING_BOX / BOUNDING_BOXES (issues 11, 16)."""
import importlib
from collections import namedtuple

import numpy as np
import pytest
import torch
from PIL import Image

from instdiff_model import interop
from instdiff_model.errors import InstDiffError
from instdiff_model.layout import Instance, Layout
from scripts.headless import PromptError
from workflows_api import grounded_prompt

# Impact Pack's SEG namedtuple, field for field (impact/core.py).
SEG = namedtuple("SEG", ["cropped_image", "cropped_mask", "confidence", "crop_region", "bbox", "label",
                         "control_net_wrapper"], defaults=[None])


def boxes_of(instances):
    return [tuple(round(v, 4) for v in inst.box) if inst.box is not None else None for inst in instances]


# ------------------------------------------------------------------------------------------- core BOUNDING_BOX
def test_core_bounding_box_shapes_and_labels():
    # Per-image list (RT-DETR / SAM3 Detect output): take `frame`; pixels, top-left + size.
    value = [[{"x": 10.5, "y": 20, "width": 30, "height": 40, "label": "cat", "score": 0.9}],
             [{"x": 1, "y": 2, "width": 3, "height": 4, "metadata": {"type": "object", "text": "", "desc": "a dog",
                                                                      "palette": ["#ff0000"]}}]]
    (d0,) = interop.from_bounding_box(value, frame=0)
    assert (d0.source, d0.label, d0.box, d0.score) == ("BOUNDING_BOX item 0", "cat", (10.5, 20.0, 30.0, 40.0), 0.9)
    (d1,) = interop.from_bounding_box(value, frame=1)
    assert d1.label == "a dog" and d1.box == (1.0, 2.0, 3.0, 4.0)
    # A single widget dict and a flat list are accepted too; metadata.text is used when desc is missing.
    (w,) = interop.from_bounding_box({"x": 0, "y": 0, "width": 512, "height": 512})
    assert w.box == (0.0, 0.0, 512.0, 512.0) and w.label == ""
    (t,) = interop.from_bounding_box([{"x": 0, "y": 0, "width": 5, "height": 5, "metadata": {"text": "sign"}}])
    assert t.label == "sign"
    assert interop.from_bounding_box([]) == [] and interop.from_bounding_box(None) == []


@pytest.mark.parametrize("value, fragment", [
    ([{"x": 0, "y": 0, "width": 5}], r"BOUNDING_BOX item 0: missing \['height'\]"),
    ([{"x": 0, "y": 0, "width": 5, "height": 5}, {"x": 0, "y": "a", "width": 5, "height": 5}],
     r"BOUNDING_BOX item 1 'y': expected a number"),
    ([{"x": 0, "y": 0, "width": 0, "height": 5}], r"BOUNDING_BOX item 0: zero or negative size"),
    ([{"x": 0, "y": 0, "width": 1, "height": 1}, [1, 2, 3, 4]], r"BOUNDING_BOX item 1: expected a \{x, y, width"),
    ([[{"x": 0, "y": 0, "width": 1, "height": 1}]], r"frame 3 requested but the input has 1 frame"),
    (7, r"BOUNDING_BOX: expected a"),
])
def test_core_bounding_box_errors_name_the_item(value, fragment):
    with pytest.raises(InstDiffError, match=fragment):
        interop.from_bounding_box(value, frame=3 if "frame 3" in fragment else 0)


# ------------------------------------------------------------------------------------------------ box lists
@pytest.mark.parametrize("fmt, box", [
    ("xyxy", [10, 20, 50, 80]), ("xywh", [10, 20, 40, 60]), ("cxcywh", [30, 50, 40, 60]),
    ("xyxy_norm", [0.1, 0.2, 0.5, 0.8]), ("xywh_norm", [0.1, 0.2, 0.4, 0.6]), ("cxcywh_norm", [0.3, 0.5, 0.4, 0.6]),
])
def test_box_formats_give_the_same_pixel_box(fmt, box):
    assert tuple(round(v, 6) for v in interop.box_to_xywh(box, fmt, (100, 100), "x")) == (10, 20, 40, 60)


def test_box_list_shapes():
    size = (200, 100)
    # KJNodes BBOX: list of xyxy boxes (also a tensor); no labels.
    dets = interop.from_box_list([[0, 0, 10, 10], [20, 30, 60, 90]], "xyxy", size, what="BBOX")
    assert [d.box for d in dets] == [(0, 0, 10, 10), (20, 30, 40, 60)] and dets[1].source == "BBOX item 1"
    dets = interop.from_box_list(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), "xyxy", size)
    assert dets[0].box == (0, 0, 10, 10)
    # Florence-2 JSON data: a per-image list of {"bboxes", "labels"}.
    flor = [{"bboxes": [[1, 2, 11, 22], [5, 5, 6, 6]], "labels": ["a car", "a dog"]}]
    dets = interop.from_box_list(flor, "xyxy", size)
    assert [(d.label, d.box) for d in dets] == [("a car", (1, 2, 10, 20)), ("a dog", (5, 5, 1, 1))]
    # Dicts with bbox + label + score, as JSON text; a bare box; per-image nested lists.
    dets = interop.from_box_list('[{"bbox": [0.5, 0.5, 0.2, 0.4], "label": "sun", "score": 0.7}]',
                                 "cxcywh_norm", size)
    assert (dets[0].label, dets[0].score) == ("sun", 0.7) and boxes_of([dets[0]]) == [(80.0, 30.0, 40.0, 40.0)]
    assert interop.from_box_list([1, 2, 3, 4], "xywh", size)[0].box == (1, 2, 3, 4)
    per_image = [[[0, 0, 1, 1]], [[2, 2, 4, 4], [0, 0, 5, 5]]]
    assert [d.box for d in interop.from_box_list(per_image, "xyxy", size, frame=1)] == [(2, 2, 2, 2), (0, 0, 5, 5)]
    assert interop.from_box_list("", "xyxy", size) == [] and interop.from_box_list(None, "xyxy", size) == []


@pytest.mark.parametrize("value, fmt, fragment", [
    ([[0, 0, 10, 10], [30, 30, 20, 40]], "xyxy", r"boxes item 1: .* zero or negative size as xyxy .*check box_format"),
    ([[0, 0, 10]], "xyxy", r"boxes item 0: expected 4 numbers \(\[x1, y1, x2, y2\] pixels"),
    ([{"label": "x"}], "xyxy", r"boxes item 0: a dict needs 'bbox' or 'box'"),
    ("[[0, 0, 1", "xyxy", r"boxes: not valid JSON"),
    ([[0, 0, "a", 1]], "xywh", r"boxes item 0: expected a number"),
])
def test_box_list_errors(value, fmt, fragment):
    with pytest.raises(InstDiffError, match=fragment):
        interop.from_box_list(value, fmt, (64, 64))


# --------------------------------------------------------------------------------------------- Impact SEGS
def test_segs_box_and_pasted_mask():
    crop = [10, 20, 40, 60]  # x1, y1, x2, y2 -> a 40x30 (HxW) crop
    cm = np.zeros((40, 30), dtype=np.float32)
    cm[5:15, 2:12] = 1.0
    segs = ((100, 80), [SEG(None, cm, np.float32(0.8), crop, [12, 25, 22, 35], "person"),
                        SEG(None, torch.from_numpy(cm), 0.3, crop, [12, 25, 22, 35], "")])
    d0, d1 = interop.from_segs(segs)
    assert (d0.source, d0.label, d0.box, d0.size) == ("SEGS item 0", "person", (12, 25, 10, 10), (80, 100))
    assert abs(d0.score - 0.8) < 1e-6 and d0.mask.shape == (100, 80) and d0.mask.sum() == 100
    ys, xs = np.nonzero(d0.mask)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (25, 34, 12, 21)
    assert np.array_equal(d1.mask, d0.mask)  # torch masks read the same
    (nomask,) = interop.from_segs(((100, 80), [segs[1][0]]), use_masks=False)
    assert nomask.mask is None and nomask.box == (12, 25, 10, 10)


@pytest.mark.parametrize("segs, fragment", [
    ([1, 2, 3], r"SEGS: expected \(\(height, width\), \[SEG, ...\]\)"),
    (((64, 64), [SEG(None, np.ones((5, 5)), 1.0, [0, 0, 10, 10], [0, 0, 10, 10], "a")]),
     r"SEGS item 0: cropped_mask has shape \(5, 5\) but crop_region \[0, 0, 10, 10\] is 10x10"),
    (((64, 64), [SEG(None, None, 1.0, [0, 0, 4, 4], [0, 0, 4, 4], "a"),
                 SEG(None, None, 1.0, [5, 5, 5, 9], [5, 5, 5, 9], "b")]), r"SEGS item 1 bbox: .* has no area"),
])
def test_segs_errors(segs, fragment):
    with pytest.raises(InstDiffError, match=fragment):
        interop.from_segs(segs)


# --------------------------------------------------------------------------------------------------- MASK
def test_mask_batch_one_instance_each_and_empty_refused():
    m = torch.zeros((3, 16, 16))
    m[0, :4, :4] = 1
    m[1, 8:, 8:] = 0.6
    m[2, 0, 0] = 0.4
    with pytest.raises(InstDiffError, match=r"MASK item 2: empty \(nothing above threshold 0.5\)"):
        interop.from_masks(m)
    dets = interop.from_masks(m[:2])
    assert [d.source for d in dets] == ["MASK item 0", "MASK item 1"]
    assert [int(d.mask.sum()) for d in dets] == [16, 64] and dets[0].size == (16, 16)
    assert len(interop.from_masks(m[0])) == 1  # a single (H, W) mask


# ---------------------------------------------------------------------------------- detections -> instances
def test_scaling_clamping_captions_and_scores():
    dets = [interop.Detection("A item 0", "cat", (10, 10, 20, 20), score=0.9),
            interop.Detection("A item 1", "dog", (90, 0, 20, 10), score=0.2),
            interop.Detection("B item 0", "", (0, 0, 50, 50)),
            interop.Detection("C item 0", "tree", mask=np.pad(np.ones((2, 2), bool), ((0, 2), (0, 2))), size=(4, 4))]
    notes = []
    insts = interop.detections_to_instances(dets, 200, 200, source_size=(100, 100), captions="\n\na red ball\n\n",
                                            min_score=0.1, notes=notes)
    # Boxes scale 100 -> 200; item 1 reaches x=220 and is clamped; the blank lines keep the labels.
    assert [i.caption for i in insts] == ["cat", "dog", "a red ball", "tree"]
    assert boxes_of(insts) == [(20, 20, 40, 40), (180, 0, 20, 20), (0, 0, 100, 100), None]
    assert insts[3].mask.shape == (200, 200) and insts[3].mask[:100, :100].all() and insts[3].mask.sum() == 10000
    assert notes == ["A item 1: box clamped to the 200x200 layout"]
    # min_score drops item 1 and the caption lines then follow the kept ones.
    insts = interop.detections_to_instances(dets, 100, 100, captions="x\ny\nz", min_score=0.5, notes=notes)
    assert [i.caption for i in insts] == ["x", "y", "z"] and notes[-1].startswith("A item 1: dropped, score 0.2")


@pytest.mark.parametrize("kwargs, fragment", [
    ({"captions": ""}, r"B item 0: no caption \(the detection has no label\); write one on line 2 of captions"),
    ({"captions": "a\nb\nc"}, r"captions has 3 lines but 2 instance\(s\) were imported"),
    ({"captions": "a\nb", "out_of_image": "error"},
     r"A item 0: box \[90, 0, 110, 10\] .* extends outside the 100x100 layout"),
])
def test_instance_errors(kwargs, fragment):
    dets = [interop.Detection("A item 0", "cat", (90, 0, 20, 10)), interop.Detection("B item 0", "", (0, 0, 5, 5))]
    with pytest.raises(InstDiffError, match=fragment):
        interop.detections_to_instances(dets, 100, 100, **kwargs)


def test_box_entirely_outside_is_refused():
    with pytest.raises(InstDiffError, match=r"A item 0: box .* lies outside the 64x64 layout"):
        interop.detections_to_instances([interop.Detection("A item 0", "x", (100, 100, 5, 5))], 64, 64)


# ------------------------------------------------------------------------------------- layout -> BOUNDING_BOX
def test_layout_to_bounding_boxes_and_masks():
    mask = np.zeros((32, 48), bool)
    mask[4:10, 6:9] = True
    lay = Layout(width=48, height=32, caption="s", instances=[
        Instance("a box", box=(1.5, 2, 10, 5), color="#ff0000"), Instance("a point", point=(3, 3)),
        Instance("a blob", mask=mask), Instance("a tri", polygon=[[(0, 0), (8, 0), (0, 8)]])])
    (frame,) = interop.layout_to_bounding_boxes([lay])
    assert frame[0] == {"x": 1, "y": 2, "width": 11, "height": 5, "label": "a box",
                        "metadata": {"type": "obj", "text": "", "desc": "a box", "palette": ["#ff0000"]}}
    assert frame[1]["metadata"] == {"type": "obj", "text": "", "desc": "a blob", "palette": []}
    assert [(b["x"], b["y"], b["width"], b["height"], b["label"]) for b in frame[1:]] == [
        (6, 4, 3, 6, "a blob"), (0, 0, 8, 8, "a tri")]
    (exact,) = interop.layout_to_bounding_boxes([lay], round_to_pixels=False)
    assert exact[0]["x"] == 1.5 and exact[0]["width"] == 10
    masks, captions = interop.layout_masks(lay)
    assert captions == ["a box", "a blob", "a tri"] and masks.shape == (3, 32, 48)
    assert masks[0].sum() == 11 * 5 and np.array_equal(masks[1] > 0, mask)
    # Round trip: core boxes back in give the same boxes and captions.
    back = interop.detections_to_instances(interop.from_bounding_box([frame]), 48, 32)
    assert [(i.caption, i.box) for i in back] == [(b["label"], (b["x"], b["y"], b["width"], b["height"]))
                                                 for b in frame]


# ------------------------------------------------------------------------------------------- node (in-process)
@pytest.fixture(scope="module")
def nodes(pack):
    return importlib.import_module(pack.__name__ + ".nodes.interop")


@pytest.fixture(scope="module")
def packed(pack):
    """The pack's own layout / errors modules (the classes the nodes check against)."""
    return (importlib.import_module(pack.__name__ + ".instdiff_model.layout"),
            importlib.import_module(pack.__name__ + ".instdiff_model.errors"))


def build(nodes, **kw):
    args = dict(width=128, height=128, caption="a scene", captions="", box_format="xyxy", out_of_image="clamp",
                min_score=0.0, mask_threshold=0.5, segs_masks=True, frame=0, boxes_json="")
    args.update(kw)
    return nodes.LayoutFromDetections().build(**args)


def test_node_core_bounding_boxes_in_exact_core_format(nodes):
    # What RT-DETR Detect emits for a 256x256 image: per-image lists of float pixel dicts with label/score.
    core = [[{"x": 20.0, "y": 40.0, "width": 100.0, "height": 60.0, "label": "car", "score": 0.92},
             {"x": 150.5, "y": 10.0, "width": 80.0, "height": 200.0, "label": "person", "score": 0.81}]]
    source = torch.zeros((1, 256, 256, 3))
    (layout,), notes = build(nodes, bounding_boxes=core, source_image=source, captions="\na tall man")
    assert notes == "" and (layout.width, layout.height, layout.caption) == (128, 128, "a scene")
    assert [(i.caption, i.box) for i in layout.instances] == [("car", (10, 20, 50, 30)),
                                                              ("a tall man", (75.25, 5, 40, 100))]
    # ...and back out as core boxes.
    boxes, captions, masks, with_meta = nodes.LayoutToBoundingBoxes().convert([layout], 0, True)
    meta = {"type": "obj", "text": "", "palette": []}
    assert boxes == [[{"x": 10, "y": 20, "width": 50, "height": 30, "label": "car", "metadata": {**meta, "desc": "car"}},
                      {"x": 75, "y": 5, "width": 41, "height": 100, "label": "a tall man",
                       "metadata": {**meta, "desc": "a tall man"}}]]
    assert with_meta == [{k: v for k, v in b.items() if k != "label"} for b in boxes[0]]
    assert captions == "car\na tall man" and tuple(masks.shape) == (2, 128, 128)


def test_node_appends_to_a_layout_without_mutating_it(nodes, packed):
    lay = packed[0]
    base = [lay.Layout(width=128, height=64, caption="old", instances=[lay.Instance("sky", box=(0, 0, 128, 20))])]
    (out,), _ = build(nodes, layout=base, caption="", bboxes=[[0, 32, 64, 64]], captions="grass")
    assert len(base[0].instances) == 1 and out is not base[0]
    assert out.caption == "old" and [(i.caption, i.box) for i in out.instances] == [
        ("sky", (0, 0, 128, 20)), ("grass", (0, 32, 64, 32))]


def test_node_errors_name_the_element(nodes, packed):
    error = packed[1].InstDiffError
    with pytest.raises(error, match="nothing to import"):
        build(nodes)
    with pytest.raises(error, match=r"BBOX item 0: no caption"):
        build(nodes, bboxes=[[0, 0, 10, 10]])
    with pytest.raises(error, match=r"MASK item 0: empty"):
        build(nodes, masks=torch.zeros((1, 128, 128)))
    many = [[i, 0, i + 1, 1] for i in range(31)]
    with pytest.raises(error, match=r"at most 30 instances; the layout has 0 and 31 were imported; raise min_score"):
        build(nodes, boxes_json=str(many), captions="\n".join("x" for _ in many))


def test_node_names_the_element_of_an_instance_the_layout_refuses(nodes, packed):
    """The layout's refusal of imported instance k is labelled with the k-th kept detection (its index, after the
    connected layout's own instances and the dropped low scores); its message is the layout's, unchanged."""
    lay, errors = packed
    base = [lay.Layout(width=128, height=128, caption="old", instances=[lay.Instance("sky", box=(0, 0, 128, 20))])]
    item = {"x": 0, "y": 30, "width": 20, "height": 20, "score": 0.9}
    boxes = [dict(item, label="weak", score=0.1), dict(item, label="ok"), dict(item, label="heavy", metadata={"weight": 5})]
    with pytest.raises(errors.InstDiffError) as info:
        build(nodes, layout=base, bounding_boxes=boxes, min_score=0.5)
    assert str(info.value) == ("BOUNDING_BOX item 2: instance 2 weight: 5 is outside 0..3; 1 is the official strength, "
                               "0 turns the instance's grounding off in its region")
    assert (info.value.index, info.value.field) == (2, "weight")


# --------------------------------------------------------------------------------------------- on the host
def two_mask_batch(b, size):
    """Two blobs as a (2, H, W) MASK batch, with stock nodes only: SolidMask/MaskComposite -> MaskToImage ->
    ImageBatch -> ImageToMask."""
    images = []
    for x, y, w, h in ((8, 8, 48, 40), (64, 60, 56, 60)):
        empty = b.add("SolidMask", value=0.0, width=size, height=size)
        blob = b.add("SolidMask", value=1.0, width=w, height=h)
        mask = b.add("MaskComposite", destination=empty[0], source=blob[0], x=x, y=y, operation="add")
        images.append(b.add("MaskToImage", mask=mask[0]))
    batch = b.add("ImageBatch", image1=images[0][0], image2=images[1][0])
    return b.add("ImageToMask", image=batch[0], channel="red")


def masks_layout(captions: str):
    """A layout_node for grounded_prompt: Layout from detections on two_mask_batch (128x128) with `captions`."""
    def layout_node(b):
        masks = two_mask_batch(b, 128)
        return b.add("InstanceDiffusionLayoutFromDetections", width=128, height=128, caption="a test scene",
                     captions=captions, box_format="xyxy", out_of_image="clamp", min_score=0.0,
                     mask_threshold=0.5, segs_masks=True, frame=0, boxes_json="", masks=masks[0])
    return layout_node


def test_mask_batch_to_image_on_the_host(host):
    prompt, ids = grounded_prompt(layout_node=masks_layout("a red cube\na blue ball"))
    entry = host.run(prompt)
    (image,) = host.output_files(entry, ids["image"])
    (preview,) = host.output_files(entry, ids["preview"])
    with Image.open(image) as im, Image.open(preview) as pv:
        assert im.size == (128, 128) and pv.size == (128, 128)


def test_bad_detection_input_fails_on_the_host_with_the_element_named(host):
    prompt, _ = grounded_prompt(layout_node=masks_layout("a red cube"))
    with pytest.raises(PromptError, match=r"MASK item 1: no caption"):
        host.run(prompt)


# ---------------------------------------------------------------- core BOUNDING_BOXES / Create Bounding Boxes (issue 16)
# Field meanings confirmed from source: comfy_api io.BoundingBoxes (Type = list[BoundingBoxWithMetadata]),
# ComfyUI comfy_extras/nodes_bounding_boxes.py (CreateBoundingBoxes) and the frontend's
# src/types/boundingBoxes.ts + boundingBoxesUtil.ts (metadata {type: 'obj' | 'text', text, desc, palette: hex[]}).
CANVAS_STATE = [  # what the canvas widget writes (toBoundingBoxes): integer pixels of a 1024 x 768 canvas
    {"x": 102, "y": 77, "width": 410, "height": 307,
     "metadata": {"type": "obj", "text": "", "desc": "a red vintage car", "palette": ["#c81e1e", "#ffffff"]}},
    {"x": 600, "y": 40, "width": 300, "height": 100,
     "metadata": {"type": "text", "text": "SALE", "desc": "", "palette": ["#fc0"]}},
    {"x": 512, "y": 384, "width": 256, "height": 256,
     "metadata": {"type": "obj", "text": "", "desc": "  ", "palette": []}}]
ELEMENTS = [  # CreateBoundingBoxes 'elements' (build_elements) for the first two boxes above
    {"type": "obj", "bbox": [100, 100, 500, 500], "desc": "a red vintage car", "color_palette": ["#C81E1E", "#FFFFFF"]},
    {"type": "text", "bbox": [52, 586, 182, 879], "text": "SALE", "desc": ""}]


def test_bounding_boxes_captions_from_desc_then_text_and_colour_from_palette():
    dets = interop.from_bounding_box(CANVAS_STATE, what="BOUNDING_BOXES")
    assert [(d.source, d.label, d.box, d.color) for d in dets] == [
        ("BOUNDING_BOXES item 0", "a red vintage car", (102, 77, 410, 307), "#c81e1e"),
        ("BOUNDING_BOXES item 1", "SALE", (600, 40, 300, 100), "#ffcc00"),
        ("BOUNDING_BOXES item 2", "", (512, 384, 256, 256), None)]
    insts = interop.detections_to_instances(dets, 512, 384, source_size=(1024, 768), captions="\n\na bare box")
    assert [(i.caption, i.box, i.color) for i in insts] == [
        ("a red vintage car", (51, 38.5, 205, 153.5), "#c81e1e"), ("SALE", (300, 20, 150, 50), "#ffcc00"),
        ("a bare box", (256, 192, 128, 128), None)]
    with pytest.raises(InstDiffError, match=r"BOUNDING_BOXES item 2: no caption .* line 3 of captions"):
        interop.detections_to_instances(dets, 512, 384, source_size=(1024, 768))


def test_create_bounding_boxes_elements_grid_to_layout_pixels():
    dets = interop.from_elements(ELEMENTS)
    insts = interop.detections_to_instances(dets, 1000, 500)
    assert [(i.caption, i.box, i.color) for i in insts] == [
        ("a red vintage car", (100, 50, 400, 200), "#c81e1e"), ("SALE", (586, 26, 293, 65), None)]
    assert interop.from_elements("") == [] and interop.from_elements(None) == []
    for bad, fragment in ((["x"], r"elements item 0: expected \{type, bbox"),
                          ([{"bbox": [10, 10, 10, 50]}], r"elements item 0: bbox .* has no area"),
                          ([{"bbox": [1, 2, 3]}], r"elements item 0: bbox must be \[ymin, xmin, ymax, xmax\]"),
                          ("[1,", r"elements is not valid JSON")):
        with pytest.raises(InstDiffError, match=fragment):
            interop.from_elements(bad)


def test_node_bounding_boxes_in_and_out_round_trip(nodes):
    (layout,), notes = build(nodes, width=512, height=384, boxes_with_metadata=CANVAS_STATE[:2],
                             source_image=torch.zeros((1, 768, 1024, 3)))
    assert notes == "" and [(i.caption, i.box, i.color) for i in layout.instances] == [
        ("a red vintage car", (51, 38.5, 205, 153.5), "#c81e1e"), ("SALE", (300, 20, 150, 50), "#ffcc00")]
    *_, with_meta = nodes.LayoutToBoundingBoxes().convert([layout], 0, True)
    # The contract the canvas reads: integer pixels + metadata {type, text, desc, palette (hex list)}.
    assert with_meta == [
        {"x": 51, "y": 38, "width": 205, "height": 154,
         "metadata": {"type": "obj", "text": "", "desc": "a red vintage car", "palette": ["#c81e1e"]}},
        {"x": 300, "y": 20, "width": 150, "height": 50,
         "metadata": {"type": "obj", "text": "", "desc": "SALE", "palette": ["#ffcc00"]}}]
    # ... and back in again: same captions and colours, boxes to the pixel.
    (again,), _ = build(nodes, width=512, height=384, boxes_with_metadata=with_meta)
    assert [(i.caption, i.box, i.color) for i in again.instances] == [
        ("a red vintage car", (51, 38, 205, 154), "#c81e1e"), ("SALE", (300, 20, 150, 50), "#ffcc00")]
    # Create Bounding Boxes' own outputs: BOUNDING_BOX (one frame, no metadata) + elements for the captions.
    core_bbox = [[{"x": b["x"], "y": b["y"], "width": b["width"], "height": b["height"]} for b in CANVAS_STATE[:2]]]
    (from_canvas,), _ = build(nodes, width=512, height=384, elements=ELEMENTS, bounding_boxes=core_bbox,
                              source_image=torch.zeros((1, 768, 1024, 3)), captions="a car\nSALE sign")
    assert [i.caption for i in from_canvas.instances] == ["a car", "SALE sign", "a red vintage car", "SALE"]


def test_node_types_load_on_any_host(nodes):
    """Plain type strings: the 2024 host knows neither core box type; socket-only (no canvas widget in 2026)."""
    spec = nodes.LayoutFromDetections.INPUT_TYPES()["optional"]
    assert spec["bounding_boxes"][0] == "BOUNDING_BOX" and spec["bounding_boxes"][1]["forceInput"] is True
    assert set(spec["bounding_boxes"][1]) == {"forceInput", "tooltip"}  # no widget options: a socket everywhere
    assert spec["boxes_with_metadata"][0] == "BOUNDING_BOXES" and spec["boxes_with_metadata"][1]["forceInput"]
    assert spec["elements"][0] == "ARRAY"
    assert nodes.LayoutToBoundingBoxes.RETURN_TYPES == ("BOUNDING_BOX", "STRING", "MASK", "BOUNDING_BOXES")


def test_bounding_boxes_seed_the_layout_editor(nodes, pack):
    """BOUNDING_BOXES -> Layout from detections -> Layout's seed_layout: the seeds are the canvas's boxes."""
    layout_node = importlib.import_module(pack.__name__ + ".nodes.layout").InstanceLayoutNode()
    (dets,), _ = build(nodes, width=512, height=384, boxes_with_metadata=CANVAS_STATE[:2],
                       source_image=torch.zeros((1, 768, 1024, 3)))
    empty = ('{"schema": "instdiff.layout", "version": 1, "width": 512, "height": 384, "caption": "", '
             '"instances": []}')
    out = layout_node.build(512, 384, "", empty, seed_layout=[dets])
    (seeded,) = out["result"][0]
    assert [(i.caption, i.box, i.color) for i in seeded.instances] == [
        ("a red vintage car", (51, 38.5, 205, 153.5), "#c81e1e"), ("SALE", (300, 20, 150, 50), "#ffcc00")]
