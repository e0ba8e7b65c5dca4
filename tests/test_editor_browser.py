"""The layout editor widget in a real browser (Debian chromium + playwright-core, see scripts/setup_browser.sh)."""
# tests/browser/editor_flow.mjs builds a graph on the host UI, draws one instance of each kind (box, point,
# scribble, polygon, mask) with real mouse events, types captions, queues the prompt, then reloads the page and
# loads the saved workflow. Here we check what the backend received, the Layout Preview picture and the restore.
# It also opens the pop-out editor (draws, undoes/redoes, deletes with keys, closes with Esc) and checks that after
# a seeded run the editor shows the backend's merged layout exactly. Screenshots and result.json go to
# out/editor_browser/ (ignored by git: the suite never rewrites a tracked file; scripts/refresh_docs_pictures.py
# refreshes docs/*.png on purpose). The flow reads the frontend's settings from the environment (see editor_flow.mjs).
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
BROWSER_DIR = REPO / "tests" / "browser"
CHROMIUM = os.environ.get("INSTDIFF_CHROMIUM", "/usr/bin/chromium")
OUT = Path(os.environ.get("INSTDIFF_BROWSER_OUT", REPO / "out" / "editor_browser"))  # another folder for parallel runs
W, H = 256, 192


def _skip_reason():
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} missing and it could not be installed (scripts/setup_browser.sh needs apt-get as root)"
    if shutil.which("node") is None:
        return "node (Node.js) is not installed"
    return None


def _ensure_browser():
    """Run the idempotent set-up (chromium via apt, playwright-core via npm) unless already done."""
    if Path(CHROMIUM).exists() and (BROWSER_DIR / "node_modules" / "playwright-core").exists():
        return
    subprocess.run([str(REPO / "scripts" / "setup_browser.sh")], check=True, timeout=900)


def _git_status():
    return subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True).stdout


def _hex(c):
    return np.array([int(c[k:k + 2], 16) for k in (1, 3, 5)], dtype=float)


def _blend(col, alpha):
    grey = np.array([48.0, 48.0, 48.0])
    return grey + (col - grey) * alpha / 255.0


@pytest.fixture(scope="module")
def flow(host):
    _ensure_browser()
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    out = OUT
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    status_before = _git_status()
    proc = subprocess.run(["node", str(BROWSER_DIR / "editor_flow.mjs"), host.url, str(out)],
                          cwd=BROWSER_DIR, capture_output=True, text=True, timeout=900)
    result_path = out / "result.json"
    assert result_path.exists(), f"browser script failed:\n{proc.stdout}\n{proc.stderr}"
    result = json.loads(result_path.read_text())
    assert not result.get("error"), f"{result['error']}\nsteps: {result['steps']}\nconsole: {result['console']}"
    result["out"] = out
    result["git_status"] = (status_before, _git_status())
    return result


def test_the_flow_leaves_the_tree_as_it_was(flow):
    before, after = flow["git_status"]
    assert after == before, f"the browser flow changed the checkout (screenshots belong in out/):\n{after}"
    assert (flow["out"] / "editor.png").exists() and (flow["out"] / "editor-popout.png").exists()


def test_editor_keeps_its_size_when_its_node_is_selected(flow):
    # by its title, then by a click in the editor (on the 2026 frontend both show the node in the Parameters panel)
    assert flow["selected"], flow["sizes"]
    first, *after = flow["sizes"]
    assert first["canvasW"] > 300, first
    for size in after:
        assert size == pytest.approx(first, abs=2), flow["sizes"]


def test_drawing_is_the_layout_json(flow):
    layout = json.loads(flow["layoutJson"])
    assert layout["schema"] == "instdiff.layout" and layout["width"] == W and layout["height"] == H
    assert layout["caption"] == "a test scene"
    inst = layout["instances"]
    assert [i["caption"] for i in inst] == ["a red box", "a point", "a scribble", "a polygon", "a mask"]
    # box drawn from (16, 16) to (96, 80) in image pixels, moved by (+10, +10), undone, redone, moved back
    assert flow["afterMove"] == pytest.approx([26, 26, 80, 64], abs=2)
    assert flow["afterUndo"] == pytest.approx([16, 16, 80, 64], abs=2)
    assert inst[0]["box"] == pytest.approx([16, 16, 80, 64], abs=2)
    assert inst[1]["point"] == pytest.approx([200, 40], abs=2)
    stroke = inst[2]["scribble"][0]
    assert len(inst[2]["scribble"]) == 1 and len(stroke) >= 4
    assert stroke[0] == pytest.approx([130, 120], abs=2) and stroke[-1] == pytest.approx([220, 140], abs=2)
    ring = inst[3]["polygon"]
    assert len(ring) == 1 and np.allclose(ring[0], [[20, 110], [90, 110], [90, 175], [20, 175]], atol=2)
    mask = inst[4]["mask"]
    assert mask["size"] == [H, W]
    for i in inst:
        assert set(i) - {"caption", "color"}, i
        assert i["color"].startswith("#") and len(i["color"]) == 7
    # only the drawn kind on each instance
    assert [sorted(set(i) - {"caption", "color"}) for i in inst] == [["box"], ["point"], ["scribble"], ["polygon"], ["mask"]]


def test_mask_rle_decodes_in_the_backend(flow):
    from instdiff_model.layout import Layout
    layout = Layout.from_json(flow["layoutJson"])
    m = layout.instances[4].mask
    assert m.shape == (H, W)
    ys, xs = np.nonzero(m)
    # brush radius 12 along y=60 from x=120 to 175, then erased around x=176..180
    assert abs(ys.min() - 48) <= 2 and abs(ys.max() - 71) <= 2
    assert abs(xs.min() - 108) <= 2 and xs.max() < 176
    assert m[60, 145] and not m[60, 185] and not m[100, 145]


def test_backend_received_the_drawing(flow, host):
    entry = flow["history"]
    assert entry and entry["status"]["status_str"] == "success", json.dumps(entry)[:2000]
    prompt = entry["prompt"][2]
    sent = prompt[str(flow["ids"]["layout"])]["inputs"]
    assert sent["layout_json"] == flow["layoutJson"]
    assert sent["width"] == W and sent["height"] == H
    assert "layout_editor" not in sent
    # the sampled image exists (the full tiny-model chain ran on the drawn layout)
    assert host.output_files(entry, flow["ids"]["saveImage"])
    files = host.output_files(entry, flow["ids"]["savePreview"])
    assert files
    pic = np.asarray(Image.open(files[0]).convert("RGB"), dtype=float)
    assert pic.shape == (H, W, 3)
    inst = json.loads(flow["layoutJson"])["instances"]
    col = [_hex(i["color"]) for i in inst]

    def near(y, x, want, tol=40):
        got = pic[y, x]
        assert np.abs(got - want).max() <= tol, f"pixel ({x}, {y}) is {got}, expected about {want}"

    near(60, 16, col[0])                                 # box left edge
    near(60, 96, col[0])                                 # box right edge
    near(40, 200, col[1])                                # point centre
    near(140, 160, col[2], tol=60)                       # on the scribble (below its label)
    near(150, 60, _blend(col[3], 70))                    # inside the polygon
    # inside the mask: tinted towards the mask colour (the preview composites the mask colour premultiplied,
    # so only the direction of the tint is checked)
    tint = pic[69, 145] - 48.0
    ref = col[4] - 48.0
    assert np.linalg.norm(tint) > 10 and tint @ ref / (np.linalg.norm(tint) * np.linalg.norm(ref)) > 0.5, pic[69, 145]
    assert np.abs(pic[80, 145] - 48.0).max() <= 2                # just below the mask: background
    near(100, 240, np.array([48.0, 48.0, 48.0]), tol=2)  # background


def test_workflow_restores_the_drawing(flow):
    assert flow["restoredJson"] == flow["layoutJson"]
    assert flow["restoredRows"] == 5
    assert flow["restoredCaptions"] == ["a red box", "a point", "a scribble", "a polygon", "a mask"]
    px = flow["restoredPixels"]
    assert px["coloured"] > 0.05 * px["total"], px
    assert flow["workflowLayoutValues"][3] == flow["layoutJson"]
    pageerrors = [c for c in flow["console"] if c.startswith("pageerror")]
    assert not pageerrors, pageerrors


def test_seeded_instances_appear_and_edits_stay_on_top(flow, host):
    first, second = flow["seedFirst"], flow["seedSecond"]
    for entry in (first, second):
        assert entry and entry["status"]["status_str"] == "success", json.dumps(entry)[:2000]
    # after the first run the editor shows the three detections and adopted their size; nothing is stored yet
    assert flow["seededRows"] == ["a cat", "a dog", "a bird"]
    before = flow["seededWidget"]
    assert (before["width"], before["height"]) == (W, H)
    assert json.loads(before["json"])["instances"] == []
    # the user moved the dog: only that edit is stored, as a record of seed instance 1
    stored = json.loads(flow["seededAfterMove"]["json"])
    assert [(i["caption"], i["seed"]) for i in stored["instances"]] == [("a dog", 1)]
    assert stored["instances"][0]["box"] == pytest.approx([60, 100, 64, 48], abs=2)
    assert "seed_removed" not in stored
    # the second run got the edit and drew the moved dog plus the untouched cat and bird
    sent = second["prompt"][2][str(flow["seedIds"]["layout"])]["inputs"]
    assert sent["layout_json"] == flow["seededAfterMove"]["json"]
    (path,) = host.output_files(second, flow["seedIds"]["save"])
    pic = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    assert pic.shape == (H, W, 3)
    grey = np.array([48.0, 48.0, 48.0])
    is_col = lambda y, x: np.abs(pic[y, x] - grey).max() > 40  # noqa: E731
    assert is_col(130, 60) and is_col(130, 124)          # the dog's new left / right edges
    assert not is_col(130, 184)                           # its old right edge is background
    assert is_col(40, 16) and is_col(40, 180)             # the cat and the bird are still there


def test_canvas_fills_the_node_width_and_the_json_is_hidden(flow):
    fit = flow["fit"]
    assert fit["canvasW"] >= fit["frameW"] - 12, fit
    assert fit["canvasH"] == pytest.approx(fit["canvasW"] * H / W, abs=2), fit
    assert fit["visibleJsonBoxes"] == 0, fit
    assert (fit["jsonShown"], fit["jsonHiddenAgain"]) == (1, 0), fit   # the JSON toggle


def test_pop_out_editor_draws_with_keys_and_closes_on_escape(flow):
    pop = flow["popout"]
    assert pop["canvasW"] > 1.5 * pop["nodeCanvasW"], pop           # a much bigger canvas
    assert pop["box"] == pytest.approx([150, 100, 90, 80], abs=2)    # drawn after pressing B
    assert (pop["afterUndo"], pop["afterRedo"]) == (5, 6)            # Ctrl+Z, Ctrl+Y
    assert pop["tool"] == "select"                                   # V
    assert pop["afterDelete"] == ["a red box", "a point", "a scribble", "a polygon", "a mask"]   # Delete
    assert pop["closed"] and pop["backInNode"], pop                  # Esc
    assert pop["canvasAfterW"] == pytest.approx(pop["nodeCanvasW"], abs=2)


def test_editor_shows_the_backends_merge_exactly(flow):
    assert flow["seedThird"]["status"]["status_str"] == "success"
    # after the size change and before the run: the untouched seeds are shown as of the last run
    assert [(i["caption"], i["stale"]) for i in flow["seedStale"]] == [
        ("a cat", True), ("a dog", False), ("a bird", True)]
    ui = flow["seedThird"]["outputs"][str(flow["seedIds"]["layout"])]["instdiff_layout"][0]["layout"]
    assert ui["height"] == 200
    backend = [(i["caption"], i["box"], i["origin"]) for i in ui["instances"]]
    assert [(i["caption"], i["box"], i["origin"]) for i in flow["seedShown"]] == backend
    assert backend[0][2] == "seed" and backend[0][1][1] == pytest.approx(16 * 200 / 192, rel=1e-12)  # not rounded
