"""Demo-format import: COCO polygon lists in an annotation's `mask` become polygon rings and a mask."""
import json

import numpy as np
import pytest

from instdiff_model.errors import InstDiffError
from instdiff_model.geometry import rasterize_polygon
from instdiff_model.importers import from_coco, from_official_demo

# A COCO-style export (val2017 image 139's first "person", coordinates shifted into a 200 x 150 crop, and a
# second person made of two parts) written into the demo format's `mask` field.
PERSON = [[112.2, 27.6, 118.9, 23.1, 126.3, 25.8, 128.1, 41.2, 131.5, 62.9, 127.4, 95.1, 121.0, 96.3,
           115.2, 71.6, 109.8, 52.4]]
TWO_PARTS = [[20, 100, 60, 100, 60, 140, 20, 140], [70, 110, 90, 110, 80, 130]]
DEMO = {"caption": "two people", "width": 200, "height": 150, "annos": [
    {"bbox": [109, 23, 23, 74], "mask": PERSON, "category_name": "person", "caption": "a man in a coat"},
    {"bbox": [20, 100, 70, 40], "mask": TWO_PARTS, "caption": "a woman"},
    {"bbox": [5, 5, 10, 10], "mask": [], "caption": "a lamp"}]}


def test_demo_polygon_masks_become_polygons_and_masks():
    notes = []
    lay = from_official_demo(json.dumps(DEMO), notes)
    man, woman, lamp = lay.instances
    assert notes == []
    assert man.polygon[0][:2] == [(112.2, 27.6), (118.9, 23.1)] and len(man.polygon[0]) == 9
    assert np.array_equal(man.mask, rasterize_polygon(man.polygon, 150, 200))
    ys, xs = np.nonzero(man.mask)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (110, 130, 23, 95)  # pixel centres inside the outline
    assert man.mask[60, 120] and not man.mask[60, 100] and not man.mask[100, 120]
    assert len(woman.polygon) == 2 and woman.mask.sum() == 40 * 40 + 200  # square + triangle (20 x 20 / 2)
    assert woman.mask[120, 40] and woman.mask[115, 80] and not woman.mask[120, 65]
    assert lamp.mask is None and lamp.polygon is None
    # the same polygons as COCO `segmentation` give the same rings
    coco = {"images": [{"id": 1, "width": 200, "height": 150}], "categories": [{"id": 1, "name": "person"}],
            "annotations": [{"image_id": 1, "category_id": 1, "bbox": [20, 100, 70, 40], "segmentation": TWO_PARTS}]}
    assert from_coco(coco).instances[0].polygon == woman.polygon


def test_demo_polygon_mask_variants_and_errors():
    flat = dict(DEMO, annos=[{"caption": "a box", "mask": [10, 10, 50, 10, 50, 30, 10, 30]}])
    (inst,) = from_official_demo(flat).instances
    assert inst.mask.sum() == 40 * 20 and inst.box is None  # a single flat ring is one polygon
    outside = dict(DEMO, annos=[{"caption": "a cut", "mask": [[190, 140, 210, 140, 210, 160, 190, 160]]}])
    (cut,) = from_official_demo(outside).instances
    assert cut.polygon == [[(190, 140), (200, 140), (200, 150), (190, 150)]] and cut.mask.sum() == 100
    sliver = dict(DEMO, annos=[{"caption": "a sliver", "mask": [[10, 10.1, 50, 10.2, 30, 10.3]]}])
    notes = []
    (thin,) = from_official_demo(sliver, notes).instances
    assert thin.mask is None and thin.polygon and "covers no pixel centre" in notes[0]
    for mask, fragment in (([[1, 2, 3]], r"instance 0 polygon ring 0: COCO polygons are flat"),
                           ([[1, 2, 3, 4]], r"instance 0 polygon ring 0: has 2 point\(s\)"),
                           ([["a", "b"]], r"instance 0 polygon ring 0: COCO polygons are flat")):
        with pytest.raises(InstDiffError, match=fragment):
            from_official_demo(dict(DEMO, annos=[{"caption": "x", "mask": mask}]))
