// Unit tests of the editor's pure document module (web/instdiff_editor/document.js) with node's own runner:
//   node --test tests/web/      (run by tests/test_editor_document.py)
import assert from "node:assert/strict";
import { test } from "node:test";
import { fromBackend, History, keepShownSeeds, layoutToJson, loadState, parseLayout, rescaleDoc, saveState,
    untouched } from "../../web/instdiff_editor/document.js";
import { editBox, snap } from "../../web/instdiff_editor/geometry.js";
import { rleDecode, rleEncode } from "../../web/instdiff_editor/rle.js";

const layoutText = (instances, extra = {}) => JSON.stringify({ schema: "instdiff.layout", version: 1, width: 100,
    height: 50, caption: "c", instances, ...extra });

// What the Layout node returns after a seeded run (nodes/layout.py InstanceLayoutNode._shown).
const SHOWN = {
    layout_json: layoutText([{ caption: "moved dog", box: [1, 2, 30, 20], seed: 1, color: "#00ff00" }], { seed_removed: [2] }),
    layout: { schema: "instdiff.layout", version: 1, width: 100, height: 50, caption: "c", instances: [
        { caption: "cat", box: [12.345678, 3.3333333, 20.5, 10.25], origin: "seed", seed: 0 },
        { caption: "moved dog", box: [1, 2, 30, 20], color: "#00ff00", origin: "edited", seed: 1 },
        { caption: "tree", point: [70.123456, 40], origin: "user" },
    ] },
};

test("RLE round trip, list and compressed counts", () => {
    const m = new Uint8Array(6 * 4);
    m[1 * 6 + 2] = m[2 * 6 + 2] = m[2 * 6 + 3] = 1;
    const rle = rleEncode(m, 6, 4);
    assert.deepEqual(rle.size, [4, 6]);
    assert.deepEqual(Array.from(rleDecode(rle, 6, 4)), Array.from(m));
    // the same mask as the backend's compressed string (instdiff_model.layout.rle_encode)
    assert.deepEqual(Array.from(rleDecode({ size: [4, 6], counts: "923O6" }, 6, 4)), Array.from(m));
    // column-major runs: off 1, on 1, off 2 -> only the pixel at row 1, column 0
    assert.deepEqual(Array.from(rleDecode({ size: [2, 2], counts: [1, 1, 2] }, 2, 2)), [0, 0, 1, 0]);
});

test("the backend's merged layout is shown exactly, with origins", () => {
    const doc = fromBackend(SHOWN);
    assert.deepEqual(doc.instances.map((i) => [i.caption, i.origin, i.seed]),
        [["cat", "seed", 0], ["moved dog", "edited", 1], ["tree", "user", null]]);
    assert.deepEqual(doc.instances[0].box, [12.345678, 3.3333333, 20.5, 10.25]);   // not rounded, not re-scaled
    assert.deepEqual(doc.instances[2].point, [70.123456, 40]);
    assert.deepEqual(doc.seedRemoved, [2]);
    assert.ok(untouched(doc, doc.instances[0]) && !untouched(doc, doc.instances[1]));
});

test("layout_json keeps only the user's records: untouched seeds are not written", () => {
    const doc = fromBackend(SHOWN);
    const stored = JSON.parse(layoutToJson(doc));
    assert.deepEqual(stored.instances.map((i) => [i.caption, i.seed]), [["moved dog", 1], ["tree", undefined]]);
    assert.deepEqual(stored.seed_removed, [2]);
    doc.instances[0].box = [20, 3, 20, 10];                     // the user moves the cat
    assert.ok(!untouched(doc, doc.instances[0]));
    const after = JSON.parse(layoutToJson(doc)).instances;
    assert.deepEqual(after[0], { caption: "cat", box: [20, 3, 20, 10], color: doc.instances[0].color, seed: 0 });
    doc.instances[0].box = [12.345678, 3.3333333, 20.5, 10.25];  // moved back: untouched again
    doc.instances[0].color = "#123456";                         // a new colour is an edit too
    assert.equal(JSON.parse(layoutToJson(doc)).instances[0].seed, 0);
});

test("a text change keeps the shown seeds that it does not edit or remove, marked stale", () => {
    const shown = fromBackend(SHOWN);
    const typed = parseLayout(layoutText([{ caption: "cat edit", box: [0, 0, 5, 5], seed: 0 }]), 100, 50);
    const doc = keepShownSeeds(shown, typed);
    assert.deepEqual(doc.instances.map((i) => i.caption), ["cat edit"]);
    const other = keepShownSeeds(fromBackend(SHOWN), parseLayout(layoutText([]), 100, 50));
    assert.deepEqual(other.instances.map((i) => [i.caption, i.stale]), [["cat", true]]);
});

test("rescaling scales the drawing and keeps untouched seeds out of layout_json", () => {
    const doc = fromBackend(SHOWN);
    rescaleDoc(doc, 200, 100);
    assert.deepEqual(doc.instances[1].box, [2, 4, 60, 40]);
    assert.ok(untouched(doc, doc.instances[0]) && doc.instances[0].stale);
    const stored = JSON.parse(layoutToJson(doc));
    assert.equal(stored.width, 200);
    assert.deepEqual(stored.instances.map((i) => i.caption), ["moved dog", "tree"]);
});

test("undo/redo of whole document states, including seeds", () => {
    const doc = fromBackend(SHOWN);
    const h = new History();
    h.reset(saveState(doc, 0));
    doc.instances.splice(0, 1);
    doc.seedRemoved.push(0);
    h.commit(saveState(doc, -1));
    h.commit(saveState(doc, -1));                               // unchanged: no step
    assert.equal(h.undos.length, 1);
    const back = loadState(h.undo(saveState(doc, -1)));
    assert.deepEqual(back.doc.instances.map((i) => [i.caption, i.origin]), [["cat", "seed"], ["moved dog", "edited"], ["tree", "user"]]);
    assert.ok(untouched(back.doc, back.doc.instances[0]));
    assert.equal(back.sel, 0);
    const fwd = loadState(h.redo(saveState(back.doc, 0)));
    assert.deepEqual(fwd.doc.seedRemoved, [2, 0]);
    assert.equal(h.redo("x"), null);
});

test("snap grid and box edits stay inside the image", () => {
    assert.equal(snap(13, 8), 16);
    assert.equal(snap(13.4, 0), 13);
    assert.deepEqual(editBox([10, 10, 20, 20], "move", 100, -3, 64, 64), [44, 7, 20, 20]);
    assert.deepEqual(editBox([10, 10, 20, 20], "se", 5, 5, 64, 64, 8), [8, 8, 24, 24]);
    assert.deepEqual(editBox([10, 10, 20, 20], "nw", 30, 30, 64, 64), [30, 30, 10, 10]);
});
