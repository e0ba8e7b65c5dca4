// InstanceDiffusion layout editor: a canvas DOM widget on the "InstanceDiffusionLayout" node.
//
// The drawing IS the node's `layout_json` widget value (schema "instdiff.layout", version 1, image-pixel
// coordinates), so it is saved with the workflow, restored on load/paste and sent to the backend in the prompt.
// The editor's own widget keeps only view state (hidden instances, reference image) and is not sent in the prompt.
// Works with the plain-JS LiteGraph frontend (2024) and the Vue frontend (2025+): both serve ../../scripts/app.js.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE = "InstanceDiffusionLayout";
const SCHEMA = "instdiff.layout";
const VERSION = 1;
const MAX_INSTANCES = 30;
// Same palette as the Layout Preview node, so colours match between editor and preview.
const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4",
    "#469990", "#dcbeff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000", "#ffd8b1", "#000075", "#a9a9a9",
    "#ffe119"];
const TOOLS = [
    ["select", "Select", "Select an instance; drag a box or its corners to move/resize it, drag a point to move it"],
    ["box", "Box", "Drag to draw a box (adds a new instance if the selected one already has a box)"],
    ["point", "Point", "Click to place a point (adds a new instance if the selected one already has a point)"],
    ["scribble", "Scribble", "Drag to draw a freehand stroke on the selected instance"],
    ["polygon", "Polygon", "Click vertices; close by clicking the first vertex, double-clicking or pressing Enter (Esc cancels)"],
    ["brush", "Mask", "Paint the selected instance's mask"],
    ["eraser", "Erase", "Erase from the selected instance's mask"],
];
const KINDS = [["box", "B"], ["point", "P"], ["scribble", "S"], ["polygon", "G"], ["mask", "M"]];

// ---------------------------------------------------------------- COCO RLE (column-major, starting with a 0-run)

function rleEncode(mask, w, h) {
    const counts = [];
    let cur = 0, run = 0;
    for (let x = 0; x < w; x++) {
        for (let y = 0, i = x; y < h; y++, i += w) {
            const v = mask[i] ? 1 : 0;
            if (v !== cur) { counts.push(run); run = 0; cur = v; }
            run++;
        }
    }
    counts.push(run);
    return { size: [h, w], counts };
}

function countsFromString(s) {
    const counts = [];
    let p = 0;
    while (p < s.length) {
        let x = 0, k = 0, more = true;
        while (more) {
            if (p >= s.length) throw new Error("truncated compressed RLE string");
            const c = s.charCodeAt(p) - 48;
            if (c < 0 || c >= 64) throw new Error("invalid character in compressed RLE string");
            x |= (c & 0x1f) << (5 * k);
            more = (c & 0x20) !== 0;
            p++; k++;
            if (!more && (c & 0x10)) x |= -1 << (5 * k);
        }
        if (counts.length > 2) x += counts[counts.length - 2];
        counts.push(x);
    }
    return counts;
}

function rleDecode(rle, w, h) {
    if (!rle || !Array.isArray(rle.size)) throw new Error("mask is not COCO RLE");
    const [rh, rw] = rle.size;
    let counts = typeof rle.counts === "string" ? countsFromString(rle.counts) : rle.counts;
    if (!Array.isArray(counts)) throw new Error("mask RLE counts must be a list or a string");
    const src = new Uint8Array(rw * rh);
    let pos = 0, val = 0;
    for (const c of counts) {
        if (val) for (let j = pos; j < pos + c && j < src.length; j++) src[(j % rh) * rw + Math.floor(j / rh)] = 1;
        pos += c; val ^= 1;
    }
    return rw === w && rh === h ? src : resampleMask(src, rw, rh, w, h);
}

function resampleMask(src, sw, sh, w, h) {
    const out = new Uint8Array(w * h);
    if (!sw || !sh) return out;
    for (let y = 0; y < h; y++) {
        const sy = Math.min(sh - 1, Math.floor((y + 0.5) * sh / h));
        for (let x = 0; x < w; x++) out[y * w + x] = src[sy * sw + Math.min(sw - 1, Math.floor((x + 0.5) * sw / w))];
    }
    return out;
}

// ---------------------------------------------------------------- layout document <-> JSON

const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
const r1 = (v) => Math.round(v * 10) / 10;

function nested(v) {
    return Array.isArray(v) && v.length > 0 && Array.isArray(v[0]) && v[0].length > 0 && Array.isArray(v[0][0]);
}

function parseLayout(text, fallbackW, fallbackH) {
    const data = text && text.trim() ? JSON.parse(text) : {};
    if (typeof data !== "object" || data === null || Array.isArray(data)) throw new Error("layout_json must be a JSON object");
    const width = Number.isInteger(data.width) && data.width > 0 ? data.width : fallbackW;
    const height = Number.isInteger(data.height) && data.height > 0 ? data.height : fallbackH;
    const instances = (Array.isArray(data.instances) ? data.instances : []).map((d, i) => {
        if (typeof d !== "object" || d === null) throw new Error(`instance ${i} is not an object`);
        const inst = newInstance(String(d.caption ?? ""), typeof d.color === "string" ? d.color : PALETTE[i % PALETTE.length]);
        if (Array.isArray(d.box) && d.box.length === 4) inst.box = d.box.map(Number);
        if (Array.isArray(d.point) && d.point.length === 2) inst.point = d.point.map(Number);
        if (Array.isArray(d.scribble) && d.scribble.length) inst.scribble = (nested(d.scribble) ? d.scribble : [d.scribble]).map((s) => s.map((p) => [Number(p[0]), Number(p[1])]));
        if (Array.isArray(d.polygon) && d.polygon.length) inst.polygon = (nested(d.polygon) ? d.polygon : [d.polygon]).map((s) => s.map((p) => [Number(p[0]), Number(p[1])]));
        if (d.mask) inst.mask = rleDecode(d.mask, width, height);
        if (Number.isInteger(d.seed) && d.seed >= 0) inst.seed = d.seed;
        return inst;
    });
    const seedRemoved = Array.isArray(data.seed_removed) ? data.seed_removed.filter((k) => Number.isInteger(k) && k >= 0) : [];
    return { width, height, caption: typeof data.caption === "string" ? data.caption : "", instances, seedRemoved };
}

function newInstance(caption, color) {
    return { caption, color, box: null, point: null, scribble: null, polygon: null, mask: null, hidden: false,
             seed: null, _rle: null, _mcv: null, _mdirty: true };
}

function hasMask(inst) {
    if (!inst.mask) return false;
    for (let i = 0; i < inst.mask.length; i++) if (inst.mask[i]) return true;
    return false;
}

function instanceToJson(inst, w, h) {
    const d = { caption: inst.caption };
    if (inst.box) d.box = inst.box.map(r1);
    if (inst.point) d.point = inst.point.map(r1);
    if (inst.scribble && inst.scribble.length) d.scribble = inst.scribble.map((s) => s.map((p) => [r1(p[0]), r1(p[1])]));
    if (inst.polygon && inst.polygon.length) d.polygon = inst.polygon.map((s) => s.map((p) => [r1(p[0]), r1(p[1])]));
    if (hasMask(inst)) d.mask = inst._rle || (inst._rle = rleEncode(inst.mask, w, h));
    if (inst.color) d.color = inst.color;
    if (inst.seed !== null && inst.seed !== undefined) d.seed = inst.seed;
    return d;
}

// Seeded instances (from the node's seed_layout input) are stored in layout_json only once the user edits them
// (with "seed": k); deleted ones are listed in "seed_removed". See the node's description for the merge rules.
function seedSig(inst, w, h) {
    const d = instanceToJson(inst, w, h);
    delete d.color; delete d.seed;
    return JSON.stringify(d);
}

function untouchedSeed(doc, inst) {
    const k = inst.seed;
    return k !== null && k !== undefined && Array.isArray(doc._seedSigs) && k < doc._seedSigs.length &&
        inst.color === inst._seedColor && seedSig(inst, doc.width, doc.height) === doc._seedSigs[k];
}

function layoutToJson(doc) {
    // One instance per line keeps the text readable in the layout_json box.
    const head = JSON.stringify({ schema: SCHEMA, version: VERSION, width: doc.width, height: doc.height, caption: doc.caption });
    const rows = doc.instances.filter((inst) => !untouchedSeed(doc, inst))
        .map((inst) => "  " + JSON.stringify(instanceToJson(inst, doc.width, doc.height)));
    const removed = doc.seedRemoved?.length ? `,\n "seed_removed": ${JSON.stringify([...doc.seedRemoved].sort((a, b) => a - b))}` : "";
    return head.slice(0, -1) + ',\n "instances": [' + (rows.length ? "\n" + rows.join(",\n") + "\n " : "") + "]" + removed + "}";
}

function problems(doc) {
    const out = [];
    doc.instances.forEach((inst, i) => {
        if (!inst.caption.trim()) out.push(`#${i}: needs a caption`);
        if (!inst.box && !inst.point && !(inst.scribble && inst.scribble.length) && !(inst.polygon && inst.polygon.length) && !hasMask(inst))
            out.push(`#${i}: draw a box, point, scribble, polygon or mask`);
    });
    if (doc.instances.length > MAX_INSTANCES) out.push(`at most ${MAX_INSTANCES} instances`);
    return out;
}

function rescaleDoc(doc, w, h) {
    const sx = w / doc.width, sy = h / doc.height;
    const pt = (p) => [clamp(p[0] * sx, 0, w), clamp(p[1] * sy, 0, h)];
    for (const inst of doc.instances) {
        if (inst.box) {
            const [x, y, bw, bh] = inst.box;
            const nx = clamp(Math.round(x * sx), 0, w - 1), ny = clamp(Math.round(y * sy), 0, h - 1);
            inst.box = [nx, ny, clamp(Math.round(bw * sx), 1, w - nx), clamp(Math.round(bh * sy), 1, h - ny)];
        }
        if (inst.point) inst.point = pt(inst.point);
        if (inst.scribble) inst.scribble = inst.scribble.map((s) => s.map(pt));
        if (inst.polygon) inst.polygon = inst.polygon.map((s) => s.map(pt));
        if (inst.mask) { inst.mask = resampleMask(inst.mask, doc.width, doc.height, w, h); inst._rle = null; inst._mdirty = true; inst._mcv = null; }
    }
    doc.width = w; doc.height = h;
}

// ---------------------------------------------------------------- small DOM helpers

function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
        if (k === "style") Object.assign(e.style, v);
        else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
        else if (k in e && k !== "list") e[k] = v;
        else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
}

const CSS = `
.instdiff-editor{display:flex;flex-direction:column;gap:3px;box-sizing:border-box;font:11px sans-serif;color:#ddd;
 background:#1e1e1e;border:1px solid #444;border-radius:4px;padding:3px;overflow:hidden}
.instdiff-editor button{font:11px sans-serif;background:#333;color:#ddd;border:1px solid #555;border-radius:3px;padding:1px 5px;cursor:pointer}
.instdiff-editor button:hover{background:#444}
.instdiff-editor button.on{background:#2d5d8a;border-color:#6aa0d0;color:#fff}
.instdiff-editor button:disabled{opacity:.4;cursor:default}
.instdiff-editor .ide-bar{display:flex;flex-wrap:wrap;gap:2px;align-items:center}
.instdiff-editor .ide-sep{width:6px}
.instdiff-editor .ide-stage{flex:1 1 auto;min-height:60px;position:relative;display:flex;align-items:center;justify-content:center;overflow:hidden}
.instdiff-editor canvas{touch-action:none;cursor:crosshair;outline:none;background:#303030}
.instdiff-editor .ide-list{flex:0 0 auto;max-height:112px;overflow-y:auto;border-top:1px solid #444}
.instdiff-editor .ide-row{display:flex;gap:2px;align-items:center;padding:1px}
.instdiff-editor .ide-row.sel{background:#2d4a66}
.instdiff-editor .ide-row input[type=text]{flex:1 1 auto;min-width:40px;background:#111;color:#eee;border:1px solid #555;font:11px sans-serif;padding:1px 3px}
.instdiff-editor .ide-row input[type=color]{width:20px;height:18px;padding:0;border:none;background:none}
.instdiff-editor .ide-kinds{font-family:monospace;color:#aaa;min-width:38px}
.instdiff-editor .ide-status{min-height:13px;color:#e8b04a;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.instdiff-editor input[type=range]{width:60px}
`;

function injectCss() {
    if (document.getElementById("instdiff-editor-css")) return;
    document.head.append(el("style", { id: "instdiff-editor-css", textContent: CSS }));
}

// ---------------------------------------------------------------- the editor

class LayoutEditor {
    constructor(node) {
        this.node = node;
        this.doc = { width: 512, height: 512, caption: "", instances: [], seedRemoved: [] };
        this.seed = null;       // seed_layout of the last run (layout JSON object), shown under the user's edits
        this.sel = -1;
        this.tool = "box";
        this.brush = 0;  // image pixels; 0 = automatic (1/20 of the short side)
        this.undoStack = [];
        this.redoStack = [];
        this.lastJson = null;   // the layout_json text this editor last wrote or read
        this.base = null;       // snapshot at the last committed change (for undo)
        this.drag = null;       // pointer interaction in progress
        this.poly = null;       // polygon being drawn: [[x, y], ...]
        this.hover = null;      // image-space pointer position
        this.ref = null;        // {filename, subfolder, type} or {dataUrl}
        this.refImg = null;
        this.error = "";
        this.buildDom();
    }

    w(name) { return this.node.widgets?.find((w) => w.name === name); }

    // ---------------- DOM
    buildDom() {
        injectCss();
        const stop = (e) => e.stopPropagation();
        this.toolButtons = {};
        const tools = el("div", { className: "ide-bar" });
        for (const [id, label, title] of TOOLS) {
            const b = el("button", { textContent: label, title, onclick: () => this.setTool(id) });
            b.dataset.tool = id;
            this.toolButtons[id] = b;
            tools.append(b);
        }
        this.brushInput = el("input", { type: "range", min: "1", max: "100", value: "0", title: "Brush size (image pixels)",
            oninput: () => { this.brush = Number(this.brushInput.value); this.brushLabel.textContent = String(this.brush); this.render(); } });
        this.brushLabel = el("span", { textContent: "" });
        tools.append(el("span", { className: "ide-sep" }), el("span", { textContent: "size" }), this.brushInput, this.brushLabel);

        const act = (name, label, title, fn) => {
            const b = el("button", { textContent: label, title, onclick: fn });
            b.dataset.act = name;
            return b;
        };
        this.fileInput = el("input", { type: "file", accept: "image/*", style: { display: "none" },
            onchange: () => { const f = this.fileInput.files?.[0]; this.fileInput.value = ""; if (f) this.uploadRef(f); } });
        this.undoBtn = act("undo", "Undo", "Undo (Ctrl+Z while the drawing has focus)", () => this.undo());
        this.redoBtn = act("redo", "Redo", "Redo (Ctrl+Y / Ctrl+Shift+Z)", () => this.redo());
        const actions = el("div", { className: "ide-bar" },
            act("add", "+ Instance", "Add an empty instance and select it", () => this.addInstance()),
            act("add-box", "+ Box", "Add an instance with a box in the middle (for when there is no free space to drag one); move/resize it with Select", () => this.addBoxInstance()),
            this.undoBtn, this.redoBtn,
            act("clear", "Clear", "Remove every instance", () => this.clearAll()),
            el("span", { className: "ide-sep" }),
            act("ref", "Image…", "Reference image under the drawing (uploaded to the input folder)", () => this.fileInput.click()),
            act("ref-load", "From Load Image", "Use the image of a Load Image node (the one feeding this layout's preview, else the first one)", () => this.refFromLoadImage()),
            act("ref-size", "Use image size", "Set width/height to the reference image's size (multiple of 8)", () => this.useRefSize()),
            act("ref-clear", "No image", "Remove the reference image", () => this.setRef(null, true)),
            this.fileInput);

        this.canvas = el("canvas", { tabIndex: 0 });
        this.stage = el("div", { className: "ide-stage" }, this.canvas);
        this.list = el("div", { className: "ide-list" });
        this.status = el("div", { className: "ide-status" });
        this.root = el("div", { className: "instdiff-editor" }, tools, actions, this.stage, this.list, this.status);
        // Keep LiteGraph from treating clicks and drags inside the editor as canvas/node drags.
        for (const t of ["pointerdown", "pointermove", "pointerup", "mousedown", "mousemove", "mouseup", "wheel", "dblclick", "contextmenu", "keydown", "keyup"])
            this.root.addEventListener(t, stop);

        const c = this.canvas;
        c.addEventListener("pointerdown", (e) => this.onDown(e));
        c.addEventListener("pointermove", (e) => this.onMove(e));
        c.addEventListener("pointerup", (e) => this.onUp(e));
        c.addEventListener("pointercancel", (e) => this.onUp(e));
        c.addEventListener("pointerleave", () => { this.hover = null; this.render(); });
        c.addEventListener("dblclick", (e) => { e.preventDefault(); if (this.tool === "polygon") this.closePolygon(); });
        c.addEventListener("keydown", (e) => this.onKey(e));
        c.addEventListener("contextmenu", (e) => e.preventDefault());
        if (window.ResizeObserver) new ResizeObserver(() => this.render()).observe(this.stage);
        this.setTool("box");
    }

    setTool(id) {
        if (this.poly && id !== "polygon") this.closePolygon();
        this.tool = id;
        for (const [k, b] of Object.entries(this.toolButtons)) b.classList.toggle("on", k === id);
        this.canvas.style.cursor = id === "select" ? "default" : "crosshair";
        this.render();
    }

    brushRadius() {
        return this.brush > 0 ? this.brush : Math.max(2, Math.round(Math.min(this.doc.width, this.doc.height) / 20));
    }

    refreshList() {
        const doc = this.doc;
        this.list.replaceChildren();
        const isSeed = (j) => doc.instances[j]?.seed !== null && doc.instances[j]?.seed !== undefined;
        doc.instances.forEach((inst, i) => {
            const cap = el("input", { type: "text", value: inst.caption, placeholder: `caption of instance ${i}`,
                oninput: () => { inst.caption = cap.value; this.write(); this.render(); this.refreshStatus(); },
                onchange: () => this.commit(),
                onfocus: () => { if (this.sel !== i) { this.sel = i; this.markSelection(); this.render(); } } });
            const color = el("input", { type: "color", value: inst.color || PALETTE[i % PALETTE.length], title: "Colour",
                oninput: () => { inst.color = color.value; inst._mdirty = true; this.write(); this.render(); },
                onchange: () => this.commit() });
            const kinds = el("span", { className: "ide-kinds", title: "B box, P point, S scribble, G polygon, M mask",
                textContent: KINDS.map(([k, l]) => ((k === "mask" ? hasMask(inst) : inst[k] && (!Array.isArray(inst[k]) || inst[k].length)) ? l : "·")).join("") });
            const vis = el("button", { textContent: inst.hidden ? "◌" : "◉", title: inst.hidden ? "Hidden in the editor (still used): show" : "Hide in the editor (still used)",
                onclick: () => { inst.hidden = !inst.hidden; this.refreshList(); this.render(); this.saveView(); } });
            const row = el("div", { className: "ide-row" + (i === this.sel ? " sel" : ""),
                onpointerdown: (e) => { if (e.target === row || e.target === kinds || e.target === num) { this.sel = i; this.markSelection(); this.render(); } } },
            );
            const seeded = inst.seed !== null && inst.seed !== undefined;
            const num = el("span", { textContent: seeded ? `${i}⇣` : String(i), style: { minWidth: "14px", textAlign: "right" },
                title: seeded ? `From seed_layout instance ${inst.seed}${untouchedSeed(doc, inst) ? "" : " (edited: your version is kept)"}` : "" });
            if (seeded) row.dataset.seed = String(inst.seed);
            const mk = (name, label, title, fn, disabled) => { const b = el("button", { textContent: label, title, onclick: fn, disabled: !!disabled }); b.dataset.act = name; return b; };
            row.dataset.index = String(i);
            row.append(num, color, cap, kinds, vis,
                mk("up", "▲", "Move up (earlier in the prompt)", () => this.move(i, -1), i === 0 || seeded || isSeed(i - 1)),
                mk("down", "▼", "Move down", () => this.move(i, 1), i === doc.instances.length - 1 || seeded || isSeed(i + 1)),
                mk("delete", "✕", "Delete this instance", () => this.remove(i)));
            this.list.append(row);
        });
        this.undoBtn.disabled = !this.undoStack.length;
        this.redoBtn.disabled = !this.redoStack.length;
        this.refreshStatus();
    }

    markSelection() {
        for (const row of this.list.children) row.classList.toggle("sel", Number(row.dataset.index) === this.sel);
    }

    refreshStatus() {
        const p = problems(this.doc);
        const seeded = this.doc.instances.filter((i) => i.seed !== null && i.seed !== undefined).length;
        const info = `${this.doc.width}×${this.doc.height}, ${this.doc.instances.length} instance(s)` +
            (this.seed ? `, ${seeded} from seed_layout (${this.doc.seedRemoved.length} deleted)` : "");
        this.status.textContent = this.error ? `⚠ ${this.error}` : p.length ? `⚠ ${p.join("; ")}` : info;
        this.status.title = this.status.textContent;
        this.status.style.color = this.error || p.length ? "#e8b04a" : "#8a8";
    }

    // ---------------- state, widgets and history
    snapshot() {
        return { json: layoutToJson(this.doc), hidden: this.doc.instances.map((i) => i.hidden), sel: this.sel };
    }

    restore(snap) {
        const doc = this.mergeSeed(parseLayout(snap.json, this.doc.width, this.doc.height));
        doc.instances.forEach((inst, i) => { inst.hidden = !!snap.hidden?.[i]; });
        this.doc = doc;
        this.sel = Math.min(snap.sel ?? -1, doc.instances.length - 1);
        this.applyWidgetSize();
        this.write();
        this.base = this.snapshot();
        this.refreshList();
        this.render();
    }

    /** Put the drawing into the layout_json widget (no history entry). */
    write() {
        const doc = this.doc;
        const wj = this.w("layout_json");
        const text = layoutToJson(doc);
        this.error = "";
        if (wj && wj.value !== text) {
            wj.value = text;
            wj.callback?.(text);
        }
        this.lastJson = wj ? wj.value : text;
        this.node.setDirtyCanvas?.(true, true);
    }

    /** Write and record an undo step if anything changed since the last commit. */
    commit() {
        this.write();
        const snap = this.snapshot();
        if (this.base && (snap.json !== this.base.json || String(snap.hidden) !== String(this.base.hidden))) {
            this.undoStack.push(this.base);
            if (this.undoStack.length > 100) this.undoStack.shift();
            this.redoStack = [];
        }
        this.base = snap;
        this.refreshList();
        this.saveView();
    }

    undo() {
        if (!this.undoStack.length) return;
        this.redoStack.push(this.snapshot());
        this.restore(this.undoStack.pop());
        this.saveView();
    }

    redo() {
        if (!this.redoStack.length) return;
        this.undoStack.push(this.snapshot());
        this.restore(this.redoStack.pop());
        this.saveView();
    }

    /** Follow the width/height/caption/layout_json widgets (load, paste, typing in them, API edits). */
    sync() {
        const wj = this.w("layout_json");
        if (!wj) return;
        let changed = false;
        if (wj.value !== this.lastJson) {
            this.lastJson = wj.value;
            try {
                const hidden = this.doc.instances.map((i) => i.hidden);
                const doc = this.mergeSeed(parseLayout(wj.value, this.widgetSize()[0], this.widgetSize()[1]));
                doc.instances.forEach((inst, i) => { inst.hidden = !!hidden[i]; });
                if (this.base) this.undoStack.push(this.base);
                this.doc = doc;
                this.sel = Math.min(this.sel, doc.instances.length - 1);
                this.error = "";
                changed = true;
            } catch (exc) {
                this.error = `layout_json: ${exc.message}`;
                this.refreshStatus();
                return;
            }
        }
        const [ww, wh] = this.widgetSize();
        const cap = this.w("caption")?.value;
        if (ww !== this.doc.width || wh !== this.doc.height || (typeof cap === "string" && cap !== this.doc.caption)) {
            this.applyWidgetSize();
            this.write();
            changed = true;
        }
        if (changed) {
            this.base = this.snapshot();
            this.refreshList();
            this.render();
        }
    }

    widgetSize() {
        const ww = Number(this.w("width")?.value), wh = Number(this.w("height")?.value);
        return [Number.isFinite(ww) && ww > 0 ? Math.round(ww) : this.doc.width, Number.isFinite(wh) && wh > 0 ? Math.round(wh) : this.doc.height];
    }

    applyWidgetSize() {
        const [ww, wh] = this.widgetSize();
        if (ww !== this.doc.width || wh !== this.doc.height) {
            if (this.seed) {
                // Untouched seeded instances are re-made from the seed at the new size (so they stay untouched).
                const hidden = this.doc.instances.map((i) => i.hidden);
                const doc = parseLayout(layoutToJson(this.doc), this.doc.width, this.doc.height);
                rescaleDoc(doc, ww, wh);
                this.doc = this.mergeSeed(doc);
                this.doc.instances.forEach((inst, i) => { inst.hidden = !!hidden[i]; });
            } else rescaleDoc(this.doc, ww, wh);
        }
        const cap = this.w("caption")?.value;
        if (typeof cap === "string") this.doc.caption = cap;
    }

    // View state kept in the editor's own widget (workflow only, never in the prompt).
    getView() {
        const hidden = [];
        this.doc.instances.forEach((inst, i) => { if (inst.hidden) hidden.push(i); });
        return { hidden, ref: this.ref && !this.ref.dataUrl ? this.ref : null };
    }

    setView(v) {
        this.sync();
        if (typeof v === "string") { try { v = JSON.parse(v); } catch { v = null; } }
        if (!v || typeof v !== "object") return;
        const hidden = new Set(Array.isArray(v.hidden) ? v.hidden : []);
        this.doc.instances.forEach((inst, i) => { inst.hidden = hidden.has(i); });
        this.setRef(v.ref || null, false);
        this.base = this.snapshot();
        this.refreshList();
        this.render();
    }

    saveView() { this.node.setDirtyCanvas?.(true, false); }

    // ---------------- instance operations
    addInstance(select = true) {
        if (this.doc.instances.length >= MAX_INSTANCES) { this.error = `at most ${MAX_INSTANCES} instances`; this.refreshStatus(); return null; }
        const used = new Set(this.doc.instances.map((i) => i.color));
        const color = PALETTE.find((c) => !used.has(c)) || PALETTE[this.doc.instances.length % PALETTE.length];
        const inst = newInstance("", color);
        this.doc.instances.push(inst);
        if (select) this.sel = this.doc.instances.length - 1;
        this.commit();
        this.render();
        // Focus the caption so the user can type right away.
        const input = this.list.querySelector(`.ide-row[data-index="${this.doc.instances.length - 1}"] input[type=text]`);
        input?.focus();
        return inst;
    }

    /** A new instance with a box in the middle (a quarter of the image), selected, with the Select tool on. */
    addBoxInstance() {
        const W = this.doc.width, H = this.doc.height;
        const inst = this.addInstance(false);
        if (!inst) return null;
        inst.box = [Math.round(W * 3 / 8), Math.round(H * 3 / 8), Math.max(1, Math.round(W / 4)), Math.max(1, Math.round(H / 4))];
        this.sel = this.doc.instances.length - 1;
        this.setTool("select");
        this.commit();
        this.render();
        this.list.querySelector(`.ide-row[data-index="${this.sel}"] input[type=text]`)?.focus();
        return inst;
    }

    /** Put the seed's instances (scaled to the doc's size) under the user's edits; see the node description. */
    mergeSeed(doc) {
        doc._seedSigs = null;
        const s = this.seed;
        if (!s || !Array.isArray(s.instances)) return doc;
        let sd;
        try { sd = parseLayout(JSON.stringify(s), s.width, s.height); } catch (exc) { this.error = `seed_layout: ${exc.message}`; return doc; }
        if (sd.width !== doc.width || sd.height !== doc.height) rescaleDoc(sd, doc.width, doc.height);
        const n = sd.instances.length, removed = new Set(doc.seedRemoved), edits = new Map(), own = [];
        for (const inst of doc.instances) {
            if (inst.seed !== null && inst.seed !== undefined && inst.seed < n && !edits.has(inst.seed)) edits.set(inst.seed, inst);
            else own.push(inst);
        }
        const merged = [], sigs = [];
        sd.instances.forEach((si, k) => {
            if (typeof s.instances[k]?.color !== "string") si.color = PALETTE[merged.length % PALETTE.length];
            si.seed = k;
            si._seedColor = si.color;
            sigs.push(seedSig(si, doc.width, doc.height));
            const e = edits.get(k);
            if (e) { e._seedColor = si.color; merged.push(e); }
            else if (!removed.has(k)) merged.push(si);
        });
        doc.instances = merged.concat(own);
        doc._seedSigs = sigs;
        return doc;
    }

    /** The seed_layout of a run (from the node's UI output), or null when the input is disconnected. */
    setSeed(data) {
        const key = data ? JSON.stringify(data) : null;
        if (key === this._seedKey) return;
        this._seedKey = key;
        this.seed = data || null;
        let fresh = false;
        try {
            const d = JSON.parse(this.w("layout_json")?.value || "{}");
            fresh = !(d.instances?.length) && !(d.seed_removed?.length);
        } catch { /* shown by sync */ }
        if (data && fresh) {
            // Nothing drawn yet: take the seed's size (the backend does the same).
            for (const [name, v] of [["width", data.width], ["height", data.height]]) {
                const w = this.w(name);
                if (w && Number.isInteger(v) && w.value !== v) { w.value = v; w.callback?.(v); }
            }
        }
        this.lastJson = null;   // re-read layout_json and merge the seed in
        this.sync();
        this.base = this.snapshot();
        this.refreshList();
        this.render();
    }

    /** The selected instance, or a new one when none is selected or `needFree(inst)` says it is taken. */
    target(needFree) {
        let inst = this.doc.instances[this.sel];
        if (!inst || (needFree && needFree(inst))) {
            if (this.doc.instances.length >= MAX_INSTANCES) { this.error = `at most ${MAX_INSTANCES} instances`; this.refreshStatus(); return null; }
            const used = new Set(this.doc.instances.map((i) => i.color));
            inst = newInstance("", PALETTE.find((c) => !used.has(c)) || PALETTE[this.doc.instances.length % PALETTE.length]);
            this.doc.instances.push(inst);
            this.sel = this.doc.instances.length - 1;
            this.refreshList();
        }
        return inst;
    }

    move(i, d) {
        const j = i + d, a = this.doc.instances;
        if (j < 0 || j >= a.length) return;
        if ([a[i], a[j]].some((x) => x.seed !== null && x.seed !== undefined)) {
            this.error = "seeded instances keep the seed's order (they come first)"; this.refreshStatus(); return;
        }
        [a[i], a[j]] = [a[j], a[i]];
        if (this.sel === i) this.sel = j; else if (this.sel === j) this.sel = i;
        this.commit();
        this.render();
    }

    remove(i) {
        const k = this.doc.instances[i]?.seed;
        if (k !== null && k !== undefined && !this.doc.seedRemoved.includes(k)) this.doc.seedRemoved.push(k);
        this.doc.instances.splice(i, 1);
        if (this.sel >= this.doc.instances.length) this.sel = this.doc.instances.length - 1;
        this.commit();
        this.render();
    }

    clearAll() {
        this.poly = null;
        const removed = new Set(this.doc.seedRemoved);
        for (const inst of this.doc.instances) if (inst.seed !== null && inst.seed !== undefined) removed.add(inst.seed);
        (this.seed?.instances || []).forEach((_, k) => removed.add(k));
        this.doc.seedRemoved = [...removed];
        this.doc.instances = [];
        this.sel = -1;
        this.commit();
        this.render();
    }

    // ---------------- reference image
    setRef(ref, save) {
        this.ref = ref;
        this.refImg = null;
        if (ref) {
            const img = new Image();
            img.onload = () => { if (this.ref === ref) { this.refImg = img; this.render(); } };
            img.onerror = () => { if (this.ref === ref) { this.error = "reference image could not be loaded"; this.refreshStatus(); } };
            img.src = ref.dataUrl || api.apiURL(`/view?filename=${encodeURIComponent(ref.filename)}&type=${encodeURIComponent(ref.type || "input")}&subfolder=${encodeURIComponent(ref.subfolder || "")}`);
        }
        this.render();
        if (save) this.saveView();
    }

    async uploadRef(file) {
        try {
            const body = new FormData();
            body.append("image", file);
            const resp = await api.fetchApi("/upload/image", { method: "POST", body });
            if (resp.status !== 200) throw new Error(`${resp.status}`);
            const d = await resp.json();
            this.setRef({ filename: d.name, subfolder: d.subfolder || "", type: d.type || "input" }, true);
        } catch (exc) {
            // Not uploaded (e.g. no server): show it anyway; it is not kept in the workflow.
            const reader = new FileReader();
            reader.onload = () => this.setRef({ dataUrl: reader.result }, true);
            reader.readAsDataURL(file);
        }
    }

    refFromLoadImage() {
        const graph = this.node.graph || app.graph;
        const nodes = graph?._nodes || graph?.nodes || [];
        const loaders = nodes.filter((n) => n.type === "LoadImage" || n.comfyClass === "LoadImage");
        const linkOf = (id) => (graph.links?.get ? graph.links.get(id) : graph.links?.[id]);
        // Prefer a Load Image whose image goes into a node that also takes this layout.
        const consumers = new Set();
        for (const out of this.node.outputs || []) for (const id of out.links || []) { const l = linkOf(id); if (l) consumers.add(l.target_id); }
        let pick = loaders.find((n) => (n.outputs || []).some((o) => (o.links || []).some((id) => consumers.has(linkOf(id)?.target_id))));
        pick = pick || loaders[0];
        const value = pick?.widgets?.find((w) => w.name === "image")?.value;
        if (!value) { this.error = "no Load Image node with an image in the graph"; this.refreshStatus(); return; }
        const m = String(value).replace(/ \[(input|output|temp)\]$/, "");
        const type = (String(value).match(/ \[(input|output|temp)\]$/) || [, "input"])[1];
        const cut = m.lastIndexOf("/");
        this.error = "";
        this.setRef({ filename: cut >= 0 ? m.slice(cut + 1) : m, subfolder: cut >= 0 ? m.slice(0, cut) : "", type }, true);
    }

    useRefSize() {
        if (!this.refImg) { this.error = "no reference image"; this.refreshStatus(); return; }
        const r8 = (v) => clamp(Math.round(v / 8) * 8, 64, 8192);
        for (const [name, v] of [["width", r8(this.refImg.naturalWidth)], ["height", r8(this.refImg.naturalHeight)]]) {
            const w = this.w(name);
            if (w) { w.value = v; w.callback?.(v); }
        }
        this.sync();
        this.commit();
    }

    // ---------------- geometry helpers
    toImage(e) {
        const r = this.canvas.getBoundingClientRect();
        const x = (e.clientX - r.left) / Math.max(1, r.width) * this.doc.width;
        const y = (e.clientY - r.top) / Math.max(1, r.height) * this.doc.height;
        return [clamp(x, 0, this.doc.width), clamp(y, 0, this.doc.height)];
    }

    /** Image pixels per CSS pixel on screen (zoom-independent hit tolerance). */
    pxScale() {
        const r = this.canvas.getBoundingClientRect();
        return this.doc.width / Math.max(1, r.width);
    }

    hitTest(p) {
        const tol = 7 * this.pxScale();
        const order = [...this.doc.instances.keys()].reverse();
        const sel = this.doc.instances[this.sel];
        if (sel && !sel.hidden && sel.box) {
            const h = boxHandle(sel.box, p, tol);
            if (h) return { i: this.sel, what: "box", handle: h };
        }
        for (const i of order) {
            const inst = this.doc.instances[i];
            if (inst.hidden) continue;
            if (inst.point && Math.hypot(inst.point[0] - p[0], inst.point[1] - p[1]) <= tol * 1.3) return { i, what: "point" };
            if (inst.box) {
                const h = boxHandle(inst.box, p, tol);
                if (h) return { i, what: "box", handle: h };
            }
        }
        for (const i of order) {
            const inst = this.doc.instances[i];
            if (inst.hidden) continue;
            const [x, y, w, h] = inst.box || [0, 0, -1, -1];
            if (p[0] >= x && p[0] <= x + w && p[1] >= y && p[1] <= y + h) return { i, what: "box", handle: "move" };
            if (inst.mask && inst.mask[Math.min(this.doc.height - 1, Math.floor(p[1])) * this.doc.width + Math.min(this.doc.width - 1, Math.floor(p[0]))]) return { i, what: "select" };
            if ((inst.polygon || []).some((ring) => inPolygon(p, ring))) return { i, what: "select" };
            if ((inst.scribble || []).some((s) => s.some((q) => Math.hypot(q[0] - p[0], q[1] - p[1]) <= tol))) return { i, what: "select" };
        }
        return null;
    }

    // ---------------- pointer interaction
    onDown(e) {
        if (e.button !== 0) return;
        e.preventDefault();
        e.stopPropagation();
        this.canvas.focus({ preventScroll: true });
        this.canvas.setPointerCapture?.(e.pointerId);
        const p = this.toImage(e);
        const W = this.doc.width, H = this.doc.height;
        const t = this.tool;
        if (t === "select" || t === "box") {
            const hit = this.hitTest(p);
            if (hit && (t === "select" || (hit.what === "box" && hit.i === this.sel && hit.handle !== "move"))) {
                this.sel = hit.i;
                this.markSelection();
                const inst = this.doc.instances[hit.i];
                if (hit.what === "box") this.drag = { kind: "box-edit", inst, handle: hit.handle, start: p, orig: inst.box.slice() };
                else if (hit.what === "point") this.drag = { kind: "point-move", inst };
                this.render();
                return;
            }
            if (t === "select") { this.sel = -1; this.markSelection(); this.render(); return; }
            this.drag = { kind: "box-new", start: p, cur: p };
        } else if (t === "point") {
            const inst = this.target((i) => !!i.point);
            if (!inst) return;
            inst.point = [Math.round(p[0]), Math.round(p[1])];
            this.drag = { kind: "point-move", inst };
            this.write();
        } else if (t === "scribble") {
            const inst = this.target(null);
            if (!inst) return;
            const stroke = [[Math.round(p[0]), Math.round(p[1])]];
            inst.scribble = (inst.scribble || []).concat([stroke]);
            this.drag = { kind: "scribble", inst, stroke };
        } else if (t === "polygon") {
            const q = [Math.round(p[0]), Math.round(p[1])];
            if (this.poly && this.poly.length >= 3) {
                const f = this.poly[0];
                if (Math.hypot(f[0] - q[0], f[1] - q[1]) <= 8 * this.pxScale()) { this.closePolygon(); return; }
            }
            if (!this.poly) this.poly = [];
            const last = this.poly[this.poly.length - 1];
            if (!last || last[0] !== q[0] || last[1] !== q[1]) this.poly.push(q);
        } else if (t === "brush" || t === "eraser") {
            const inst = this.target(null);
            if (!inst) return;
            if (!inst.mask || inst.mask.length !== W * H) inst.mask = new Uint8Array(W * H);
            this.drag = { kind: "paint", inst, last: p, value: t === "brush" ? 1 : 0 };
            this.stamp(inst, p, p, this.drag.value);
        }
        this.render();
    }

    onMove(e) {
        const p = this.toImage(e);
        this.hover = p;
        const d = this.drag;
        if (d) {
            e.preventDefault();
            e.stopPropagation();
            const W = this.doc.width, H = this.doc.height;
            if (d.kind === "box-new") d.cur = p;
            else if (d.kind === "box-edit") d.inst.box = editBox(d.orig, d.handle, p[0] - d.start[0], p[1] - d.start[1], W, H);
            else if (d.kind === "point-move") d.inst.point = [Math.round(p[0]), Math.round(p[1])];
            else if (d.kind === "scribble") {
                const q = [Math.round(p[0]), Math.round(p[1])], last = d.stroke[d.stroke.length - 1];
                if (Math.hypot(q[0] - last[0], q[1] - last[1]) >= Math.max(1, 2 * this.pxScale())) d.stroke.push(q);
            } else if (d.kind === "paint") { this.stamp(d.inst, d.last, p, d.value); d.last = p; }
        }
        this.render();
    }

    onUp(e) {
        const d = this.drag;
        if (!d) return;
        e.stopPropagation();
        this.drag = null;
        this.canvas.releasePointerCapture?.(e.pointerId);
        if (d.kind === "box-new") {
            const [x0, y0] = d.start, [x1, y1] = d.cur;
            const x = Math.round(Math.min(x0, x1)), y = Math.round(Math.min(y0, y1));
            const w = Math.round(Math.max(x0, x1)) - x, h = Math.round(Math.max(y0, y1)) - y;
            if (w >= 2 && h >= 2) {
                const inst = this.target((i) => !!i.box);
                if (inst) inst.box = [x, y, w, h];
            }
        } else if (d.kind === "paint" && !hasMask(d.inst)) {
            d.inst.mask = null;
        }
        this.commit();
        this.render();
    }

    onKey(e) {
        const k = e.key;
        if (k === "Enter" && this.poly) { e.preventDefault(); this.closePolygon(); }
        else if (k === "Escape" && this.poly) { this.poly = null; this.render(); }
        else if ((e.ctrlKey || e.metaKey) && k.toLowerCase() === "z") { e.preventDefault(); e.shiftKey ? this.redo() : this.undo(); }
        else if ((e.ctrlKey || e.metaKey) && k.toLowerCase() === "y") { e.preventDefault(); this.redo(); }
        else if ((k === "Delete" || k === "Backspace") && this.sel >= 0 && this.tool === "select") { e.preventDefault(); this.remove(this.sel); }
    }

    closePolygon() {
        const ring = this.poly;
        this.poly = null;
        if (ring && ring.length >= 3) {
            const inst = this.target(null);
            if (inst) {
                inst.polygon = (inst.polygon || []).concat([ring]);
                this.commit();
            }
        }
        this.render();
    }

    /** Paint (value 1) or erase (0) a round brush along a segment, in image pixels. */
    stamp(inst, a, b, value) {
        const W = this.doc.width, H = this.doc.height, r = this.brushRadius();
        const n = Math.max(1, Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) / Math.max(1, r / 3)));
        const x0 = Math.max(0, Math.floor(Math.min(a[0], b[0]) - r)), x1 = Math.min(W - 1, Math.ceil(Math.max(a[0], b[0]) + r));
        const y0 = Math.max(0, Math.floor(Math.min(a[1], b[1]) - r)), y1 = Math.min(H - 1, Math.ceil(Math.max(a[1], b[1]) + r));
        const m = inst.mask, r2 = r * r;
        for (let s = 0; s <= n; s++) {
            const cx = a[0] + (b[0] - a[0]) * s / n, cy = a[1] + (b[1] - a[1]) * s / n;
            const ya = Math.max(y0, Math.floor(cy - r)), yb = Math.min(y1, Math.ceil(cy + r));
            const xa = Math.max(x0, Math.floor(cx - r)), xb = Math.min(x1, Math.ceil(cx + r));
            for (let y = ya; y <= yb; y++) {
                const dy = y + 0.5 - cy;
                for (let x = xa; x <= xb; x++) {
                    const dx = x + 0.5 - cx;
                    if (dx * dx + dy * dy <= r2) m[y * W + x] = value;
                }
            }
        }
        inst._rle = null;
        inst._mdirty = true;
    }

    // ---------------- drawing
    maskCanvas(inst) {
        const W = this.doc.width, H = this.doc.height;
        if (!inst._mcv || inst._mcv.width !== W || inst._mcv.height !== H) { inst._mcv = el("canvas", { width: W, height: H }); inst._mdirty = true; }
        if (inst._mdirty) {
            const ctx = inst._mcv.getContext("2d");
            const img = ctx.createImageData(W, H);
            const c = inst.color || "#ffffff";
            const R = parseInt(c.slice(1, 3), 16), G = parseInt(c.slice(3, 5), 16), B = parseInt(c.slice(5, 7), 16);
            const m = inst.mask, d = img.data;
            for (let i = 0, j = 0; i < m.length; i++, j += 4) if (m[i]) { d[j] = R; d[j + 1] = G; d[j + 2] = B; d[j + 3] = 255; }
            ctx.putImageData(img, 0, 0);
            inst._mdirty = false;
        }
        return inst._mcv;
    }

    render() {
        if (this._raf) return;
        this._raf = requestAnimationFrame(() => { this._raf = 0; this.paint(); });
    }

    paint() {
        const W = this.doc.width, H = this.doc.height;
        const sw = this.stage.clientWidth, sh = this.stage.clientHeight;
        if (sw < 4 || sh < 4) return;
        const k = Math.min(sw / W, sh / H);
        const cw = Math.max(1, Math.floor(W * k)), ch = Math.max(1, Math.floor(H * k));
        const dpr = window.devicePixelRatio || 1;
        const c = this.canvas;
        if (c.style.width !== `${cw}px` || c.style.height !== `${ch}px`) { c.style.width = `${cw}px`; c.style.height = `${ch}px`; }
        const bw = Math.max(1, Math.round(cw * dpr)), bh = Math.max(1, Math.round(ch * dpr));
        if (c.width !== bw || c.height !== bh) { c.width = bw; c.height = bh; }
        const ctx = c.getContext("2d");
        const s = bw / W;       // backing pixels per image pixel
        const px = dpr / s;     // one CSS pixel, in image pixels
        ctx.setTransform(1, 0, 0, 1, 0, 0);
        ctx.fillStyle = "#303030";
        ctx.fillRect(0, 0, bw, bh);
        ctx.setTransform(s, 0, 0, s, 0, 0);
        if (this.refImg) ctx.drawImage(this.refImg, 0, 0, W, H);
        ctx.lineJoin = ctx.lineCap = "round";
        const font = `${Math.round(11 * px * 10) / 10}px sans-serif`;
        this.doc.instances.forEach((inst, i) => {
            if (inst.hidden) return;
            const col = inst.color || PALETTE[i % PALETTE.length];
            const selected = i === this.sel;
            let anchor = null;
            if (inst.mask) {
                ctx.globalAlpha = 0.45;
                ctx.imageSmoothingEnabled = false;
                ctx.drawImage(this.maskCanvas(inst), 0, 0, W, H);
                ctx.globalAlpha = 1;
            }
            ctx.strokeStyle = col;
            ctx.fillStyle = col;
            for (const ring of inst.polygon || []) {
                ctx.beginPath();
                ring.forEach((p, j) => (j ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
                ctx.closePath();
                ctx.globalAlpha = 0.28; ctx.fill(); ctx.globalAlpha = 1;
                ctx.lineWidth = (selected ? 3 : 2) * px; ctx.stroke();
                anchor = anchor || ring[0];
            }
            for (const st of inst.scribble || []) {
                ctx.beginPath();
                st.forEach((p, j) => (j ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
                if (st.length === 1) ctx.lineTo(st[0][0] + 0.01, st[0][1]);
                ctx.lineWidth = (selected ? 4 : 3) * px; ctx.stroke();
                anchor = anchor || st[0];
            }
            if (inst.box) {
                const [x, y, w, h] = inst.box;
                ctx.lineWidth = (selected ? 3 : 2) * px;
                ctx.strokeRect(x, y, w, h);
                if (selected) {
                    const hs = 4 * px;
                    for (const [hx, hy] of [[x, y], [x + w, y], [x, y + h], [x + w, y + h]]) {
                        ctx.fillStyle = "#fff"; ctx.fillRect(hx - hs, hy - hs, 2 * hs, 2 * hs);
                        ctx.strokeRect(hx - hs, hy - hs, 2 * hs, 2 * hs);
                    }
                    ctx.fillStyle = col;
                }
                anchor = [x, y];
            }
            if (inst.point) {
                ctx.beginPath();
                ctx.arc(inst.point[0], inst.point[1], (selected ? 6 : 5) * px, 0, Math.PI * 2);
                ctx.fill();
                ctx.lineWidth = 1.5 * px; ctx.strokeStyle = "#fff"; ctx.stroke();
                anchor = anchor || [inst.point[0] + 6 * px, inst.point[1] - 6 * px];
            }
            if (!anchor && inst.mask && hasMask(inst)) {
                const m = inst.mask;
                let fx = W, fy = H;
                for (let y = 0; y < H && fy === H; y++) for (let x = 0; x < W; x++) if (m[y * W + x]) { fy = y; fx = x; break; }
                anchor = [fx, fy];
            }
            if (anchor) {
                const label = `${i}: ${inst.caption || "(no caption)"}`;
                ctx.font = font;
                const tw = ctx.measureText(label).width;
                const tx = clamp(anchor[0] + 2 * px, 0, Math.max(0, W - tw - 4 * px)), ty = clamp(anchor[1] + 2 * px, 0, Math.max(0, H - 14 * px));
                ctx.fillStyle = "rgba(0,0,0,0.7)"; ctx.fillRect(tx, ty, tw + 4 * px, 14 * px);
                ctx.fillStyle = col; ctx.textBaseline = "top"; ctx.fillText(label, tx + 2 * px, ty + 2 * px);
            }
        });
        // In-progress shapes and cursors.
        const selCol = this.doc.instances[this.sel]?.color || "#ffffff";
        if (this.drag?.kind === "box-new") {
            const [x0, y0] = this.drag.start, [x1, y1] = this.drag.cur;
            ctx.setLineDash([5 * px, 4 * px]); ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5 * px;
            ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
            ctx.setLineDash([]);
        }
        if (this.poly) {
            ctx.strokeStyle = selCol; ctx.fillStyle = selCol; ctx.lineWidth = 2 * px;
            ctx.beginPath();
            this.poly.forEach((p, j) => (j ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
            if (this.hover) ctx.lineTo(this.hover[0], this.hover[1]);
            ctx.stroke();
            this.poly.forEach((p, j) => { ctx.beginPath(); ctx.arc(p[0], p[1], (j ? 3 : 5) * px, 0, Math.PI * 2); ctx.fill(); });
        }
        if (this.hover && (this.tool === "brush" || this.tool === "eraser")) {
            ctx.beginPath(); ctx.arc(this.hover[0], this.hover[1], this.brushRadius(), 0, Math.PI * 2);
            ctx.strokeStyle = this.tool === "brush" ? "#fff" : "#f66"; ctx.lineWidth = 1 * px; ctx.stroke();
        }
        this.brushLabel.textContent = `${this.brushRadius()}px`;
    }
}

function boxHandle(box, p, tol) {
    const [x, y, w, h] = box;
    const near = (a, b) => Math.abs(a - b) <= tol;
    const corners = { nw: [x, y], ne: [x + w, y], sw: [x, y + h], se: [x + w, y + h] };
    for (const [name, [cx, cy]] of Object.entries(corners)) if (near(p[0], cx) && near(p[1], cy)) return name;
    return null;
}

function editBox(orig, handle, dx, dy, W, H) {
    let [x, y, w, h] = orig;
    if (handle === "move") {
        x = clamp(Math.round(x + dx), 0, W - w);
        y = clamp(Math.round(y + dy), 0, H - h);
        return [x, y, w, h];
    }
    let x0 = x, y0 = y, x1 = x + w, y1 = y + h;
    if (handle.includes("w")) x0 = x + dx; else x1 = x + w + dx;
    if (handle.includes("n")) y0 = y + dy; else y1 = y + h + dy;
    x0 = clamp(Math.round(x0), 0, W); x1 = clamp(Math.round(x1), 0, W);
    y0 = clamp(Math.round(y0), 0, H); y1 = clamp(Math.round(y1), 0, H);
    const nx = Math.min(x0, x1), ny = Math.min(y0, y1);
    return [nx, ny, Math.max(1, Math.abs(x1 - x0)), Math.max(1, Math.abs(y1 - y0))];
}

function inPolygon(p, ring) {
    let inside = false;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
        const [xi, yi] = ring[i], [xj, yj] = ring[j];
        if ((yi > p[1]) !== (yj > p[1]) && p[0] < (xj - xi) * (p[1] - yi) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
}

// ---------------------------------------------------------------- registration

app.registerExtension({
    name: "InstanceDiffusion.LayoutEditor",
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (nodeData?.name !== NODE) return;
        const onNodeCreated = nodeType.prototype.onNodeCreated;
        nodeType.prototype.onNodeCreated = function () {
            const r = onNodeCreated?.apply(this, arguments);
            const editor = new LayoutEditor(this);
            this.instdiffEditor = editor;
            const widget = this.addDOMWidget("layout_editor", "instdiff_layout_editor", editor.root, {
                serialize: false,          // not an input of the node: stays out of the API prompt
                hideOnZoom: false,
                getValue: () => editor.getView(),
                setValue: (v) => editor.setView(v),
                getMinHeight: () => 320,
                getHeight: () => 480,
                afterResize: () => editor.render(),
                onDraw: () => editor.sync(),
            });
            editor.widget = widget;
            // Follow the other widgets: callbacks fire on user edits; the poll catches configure/paste/API changes.
            for (const name of ["width", "height", "caption", "layout_json"]) {
                const w = this.widgets?.find((x) => x.name === name);
                if (!w) continue;
                const cb = w.callback;
                w.callback = function () { const res = cb?.apply(this, arguments); queueMicrotask(() => editor.sync()); return res; };
            }
            const timer = setInterval(() => { if (editor.root.isConnected) editor.sync(); }, 400);
            const onRemoved = this.onRemoved;
            this.onRemoved = function () { clearInterval(timer); return onRemoved?.apply(this, arguments); };
            editor.sync();
            if (!editor.base) editor.base = editor.snapshot();
            editor.refreshList();
            const [w0, h0] = this.size || [0, 0];
            this.setSize?.([Math.max(w0, 440), Math.max(h0, 720)]);
            editor.render();
            return r;
        };
        const onExecuted = nodeType.prototype.onExecuted;
        nodeType.prototype.onExecuted = function (message) {
            const r = onExecuted?.apply(this, arguments);
            const seed = message?.instdiff_seed?.[0];
            if (seed && this.instdiffEditor) this.instdiffEditor.setSeed(seed);
            return r;
        };
        const onConnectionsChange = nodeType.prototype.onConnectionsChange;
        nodeType.prototype.onConnectionsChange = function () {
            const r = onConnectionsChange?.apply(this, arguments);
            const input = this.inputs?.find((i) => i.name === "seed_layout");
            if (this.instdiffEditor?.seed && (!input || input.link === null || input.link === undefined)) this.instdiffEditor.setSeed(null);
            return r;
        };
        const onConfigure = nodeType.prototype.onConfigure;
        nodeType.prototype.onConfigure = function () {
            const r = onConfigure?.apply(this, arguments);
            const ed = this.instdiffEditor;
            if (ed) { ed.sync(); ed.undoStack = []; ed.redoStack = []; ed.base = ed.snapshot(); ed.refreshList(); ed.render(); }
            return r;
        };
    },
});

// For tests and other extensions.
export { rleEncode, rleDecode, parseLayout, layoutToJson, LayoutEditor };
