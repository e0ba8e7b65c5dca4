"""The editor's pure modules under node (tests/web/: document, codecs, tools on a stand-in canvas), and seeded ui output."""
# What it shows for a seeded Layout node's ui output is checked against the layout the backend actually returned.
import importlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENT = REPO / "web" / "instdiff_editor" / "document.js"
GEOMETRY = REPO / "web" / "instdiff_editor" / "geometry.js"
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node (Node.js) is not installed")


def test_node_unit_tests_of_the_document_module():
    proc = subprocess.run(["node", "--test", str(REPO / "tests" / "web")], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout and "# pass 0" not in proc.stdout


def _shown_by_editor(shown: dict) -> list:
    script = (f"import {{ fromBackend }} from {json.dumps(DOCUMENT.as_uri())};\n"
              "import fs from 'node:fs';\n"
              "const doc = fromBackend(JSON.parse(fs.readFileSync(0, 'utf8')));\n"
              "console.log(JSON.stringify(doc.instances.map((i) => ({caption: i.caption, origin: i.origin, seed: i.seed,"
              " box: i.box, point: i.point, scribble: i.scribble, polygon: i.polygon,"
              " mask: i.mask && Array.from(i.mask)}))));\n")
    proc = subprocess.run(["node", "--input-type=module", "-e", script], input=json.dumps(shown),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_editor_shows_exactly_what_the_backend_merged(pack):
    nodes = importlib.import_module(pack.__name__ + ".nodes.layout")
    lay = importlib.import_module(pack.__name__ + ".instdiff_model.layout")
    mask = np.zeros((30, 70), bool)
    mask[3:17, 5:41] = True
    seed = lay.Layout(width=70, height=30, caption="seed", instances=[
        lay.Instance(caption="cat", box=(7, 3, 19, 11)),
        lay.Instance(caption="dog", point=(33, 17), scribble=[[(1, 1), (13, 29)]]),
        lay.Instance(caption="bird", polygon=[[(2, 2), (9, 2), (5, 7)]]),
        lay.Instance(caption="blob", mask=mask)])
    text = json.dumps({"schema": "instdiff.layout", "version": 1, "width": 100, "height": 64, "caption": "",
                       "instances": [{"caption": "mine", "point": [50.5, 3.25]}], "seed_removed": []})
    out = nodes.InstanceLayoutNode().build(100, 64, "", text, seed_layout=[seed])
    (used,) = out["result"][0]
    shown = _shown_by_editor(out["ui"]["instdiff_layout"][0])
    assert [(s["caption"], s["origin"], s["seed"]) for s in shown] == [
        ("cat", "seed", 0), ("dog", "seed", 1), ("bird", "seed", 2), ("blob", "seed", 3), ("mine", "user", None)]
    # scaling 70x30 -> 100x64 gives fractions (e.g. 7 * 100/70 = 10.0, 3 * 64/30 = 6.4): shown to the last digit
    assert shown[0]["box"] == list(used.instances[0].box) and shown[0]["box"][1] == pytest.approx(6.4)
    assert shown[1]["point"] == list(used.instances[1].point)
    assert shown[1]["scribble"] == [[list(p) for p in s] for s in used.instances[1].scribble]
    assert shown[2]["polygon"] == [[list(p) for p in r] for r in used.instances[2].polygon]
    assert np.array_equal(np.array(shown[3]["mask"], bool).reshape(64, 100), used.instances[3].mask)
    assert shown[4]["point"] == [50.5, 3.25]


def test_the_editor_resamples_masks_by_the_backend_rule(pack):
    """The editor's resampleMask (the front end's copy: it resizes masks while the user changes the size) gives the
    backend's geometry.resize_nearest pixel for pixel, growing and shrinking."""
    geometry = importlib.import_module(pack.__name__ + ".instdiff_model.geometry")
    rng = np.random.default_rng(3)
    cases = [(int(rng.integers(1, 40)), int(rng.integers(1, 40)), int(rng.integers(1, 90)), int(rng.integers(1, 90)))
             for _ in range(60)] + [(30, 70, 64, 100), (512, 512, 64, 64), (7, 3, 700, 300)]
    masks = [rng.random((sh, sw)) < 0.4 for sh, sw, _, _ in cases]
    script = (f"import {{ resampleMask }} from {json.dumps(GEOMETRY.as_uri())};\n"
              "import fs from 'node:fs';\n"
              "const cases = JSON.parse(fs.readFileSync(0, 'utf8'));\n"
              "console.log(JSON.stringify(cases.map(([m, sw, sh, w, h]) =>"
              " Array.from(resampleMask(Uint8Array.from(m), sw, sh, w, h)))));\n")
    payload = [[m.astype(int).ravel().tolist(), sw, sh, w, h] for m, (sh, sw, h, w) in zip(masks, cases)]
    proc = subprocess.run(["node", "--input-type=module", "-e", script], input=json.dumps(payload),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    for got, m, (_, _, h, w) in zip(json.loads(proc.stdout), masks, cases):
        assert np.array_equal(np.array(got, bool).reshape(h, w), geometry.resize_nearest(m, h, w))
