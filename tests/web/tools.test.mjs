// The editor's pointer handling and keys (web/instdiff_editor/tools.js with the kinds of kinds.js) on a document
// (model.js), driven by pointer events on a stand-in canvas of the image's size (one CSS pixel = one image pixel).
import assert from "node:assert/strict";
import { test } from "node:test";
import { LayoutDocument } from "../../web/instdiff_editor/model.js";
import { Tools } from "../../web/instdiff_editor/tools.js";

function editor(W = 100, H = 50) {
    const widgets = [["width", W], ["height", H], ["caption", ""], ["layout_json", ""]].map(([name, value]) => ({ name, value }));
    const node = { widgets, setDirtyCanvas() {} };
    const none = () => {};
    const canvas = { getBoundingClientRect: () => ({ left: 0, top: 0, width: W, height: H }), setPointerCapture: none, releasePointerCapture: none };
    const ed = { node, render: none, refreshList: none, refreshStatus: none, markSelection: none, focusCaption: none,
        fitNode: none, saveView: none, setTool: (id) => ed.tools.setTool(id),
        view: { canvas, keys: { focus: none }, popped: null, showTool: none, popIn: none } };
    ed.document = new LayoutDocument(node, ed);
    ed.tools = new Tools(ed);
    ed.document.sync();
    ed.document.resetHistory();
    ed.tools.setTool("box");
    return ed;
}

const ev = (x, y) => ({ button: 0, clientX: x, clientY: y, pointerId: 1, preventDefault() {}, stopPropagation() {} });
function drag(ed, ...pts) {
    ed.tools.onDown(ev(...pts[0]));
    for (const p of pts.slice(1)) ed.tools.onMove(ev(...p));
    ed.tools.onUp(ev(...pts[pts.length - 1]));
}
const click = (ed, x, y) => drag(ed, [x, y]);
const key = (ed, k, mods = {}) => ed.tools.onKey({ key: k, target: ed.view.keys, preventDefault() {}, ...mods });
const stored = (ed) => JSON.parse(ed.document.w("layout_json").value).instances;

test("box: drawn, resized by the selected box's corner, a press inside it draws a new instance's box", () => {
    const ed = editor();
    drag(ed, [10, 10], [25, 20], [40, 30]);
    assert.deepEqual(stored(ed).map((i) => i.box), [[10, 10, 30, 20]]);
    drag(ed, [40, 30], [60, 40]);                       // the se corner of the selected box
    assert.deepEqual(stored(ed).map((i) => i.box), [[10, 10, 50, 30]]);
    drag(ed, [20, 15], [30, 25]);                       // inside it, not on a corner: a new box
    assert.deepEqual(stored(ed).map((i) => i.box), [[10, 10, 50, 30], [20, 15, 10, 10]]);
    drag(ed, [70, 10], [71, 11]);                       // under 2 x 2 pixels: nothing
    assert.equal(stored(ed).length, 2);
});

test("select: a box moves with the drag, a click in nothing drops the selection", () => {
    const ed = editor();
    drag(ed, [10, 10], [40, 30]);
    key(ed, "v");
    assert.equal(ed.tools.current.id, "select");
    drag(ed, [20, 20], [25, 23]);
    assert.deepEqual(stored(ed)[0].box, [15, 13, 30, 20]);
    click(ed, 90, 45);
    assert.equal(ed.document.sel, -1);
});

test("hits: the selected box's corner before another instance's point; points before areas", () => {
    const ed = editor();
    drag(ed, [10, 10], [30, 30]);                       // instance 0: box with its se corner at (30, 30)
    ed.tools.setTool("point");
    ed.document.select(-1);
    click(ed, 30, 30);                                  // instance 1: a point on that corner
    ed.tools.setTool("select");
    ed.document.select(0);
    drag(ed, [30, 30], [35, 35]);
    assert.deepEqual(stored(ed).map((i) => i.box || i.point), [[10, 10, 25, 25], [30, 30]]);
    ed.document.select(1);                                // now the point is selected: it moves
    drag(ed, [35, 35], [35, 35], [40, 44]);
    assert.deepEqual(stored(ed).map((i) => i.box || i.point), [[10, 10, 25, 25], [40, 44]]);
});

test("polygon: closed by its first vertex, Enter or a double click; Esc drops it", () => {
    const ed = editor();
    ed.tools.setTool("polygon");
    for (const p of [[10, 10], [30, 10], [30, 30], [10, 10]]) click(ed, ...p);
    assert.deepEqual(stored(ed)[0].polygon, [[[10, 10], [30, 10], [30, 30]]]);
    for (const p of [[50, 10], [70, 10], [70, 30]]) click(ed, ...p);
    key(ed, "Enter");
    assert.equal(stored(ed)[0].polygon.length, 2);      // on the selected instance
    for (const p of [[50, 40], [60, 40], [60, 45]]) click(ed, ...p);
    key(ed, "Escape");
    assert.equal(ed.tools.current.ring, null);
    assert.equal(stored(ed)[0].polygon.length, 2);
    for (const p of [[80, 40], [90, 40], [90, 48]]) click(ed, ...p);
    ed.tools.onDoubleClick({ preventDefault() {} });
    assert.equal(stored(ed)[0].polygon.length, 3);
    for (const p of [[1, 40], [9, 40], [9, 48]]) click(ed, ...p);
    ed.tools.setTool("select");                          // another tool keeps it
    assert.equal(stored(ed)[0].polygon.length, 4);
});

test("areas select their instance: mask, polygon, scribble", () => {
    const ed = editor();
    ed.tools.setBrush(4);
    ed.tools.setTool("brush");
    drag(ed, [10, 10], [20, 10]);
    ed.document.select(-1);
    ed.tools.setTool("polygon");
    for (const p of [[40, 5], [60, 5], [60, 25], [40, 5]]) click(ed, ...p);
    ed.document.select(-1);
    ed.tools.setTool("scribble");
    drag(ed, [70, 40], [80, 40], [90, 40]);
    assert.deepEqual(stored(ed).map((i) => Object.keys(i).filter((k) => k !== "caption" && k !== "color")),
        [["mask"], ["polygon"], ["scribble"]]);
    assert.deepEqual(stored(ed)[2].scribble, [[[70, 40], [80, 40], [90, 40]]]);
    ed.tools.setTool("select");
    for (const [p, i] of [[[15, 10], 0], [[55, 15], 1], [[80, 41], 2], [[5, 45], -1]]) {
        click(ed, ...p);
        assert.equal(ed.document.sel, i, `a click at ${p}`);
    }
});

test("mask: erased to nothing, the instance has no mask; snap grid; keys undo and delete", () => {
    const ed = editor();
    ed.tools.setBrush(3);
    ed.tools.setTool("brush");
    drag(ed, [10, 10], [12, 10]);
    assert.ok(stored(ed)[0].mask);
    ed.tools.setBrush(10);
    ed.tools.setTool("eraser");
    drag(ed, [11, 10]);
    assert.deepEqual(Object.keys(stored(ed)[0]), ["caption", "color"]);
    ed.tools.setGrid(8);
    ed.tools.setTool("box");
    drag(ed, [3, 3], [21, 13]);
    assert.deepEqual(stored(ed)[0].box, [0, 0, 24, 16]);
    key(ed, "z", { ctrlKey: true });
    assert.equal(stored(ed)[0].box, undefined);
    key(ed, "y", { ctrlKey: true });
    key(ed, "Delete");
    assert.equal(stored(ed).length, 0);
});
