// Layout editor view: toolbars, canvas, instance list and the pop-out window around a document (document.js).
// The drawing IS the node's layout_json widget value; the editor's own widget keeps only view state. The host's
// app/api are passed in by the registration module, so this module has no host imports and no side effects.
import { fromBackend, hasMask, History, isSeeded, keepShownSeeds, KINDS, layoutToJson, loadState, MAX_INSTANCES,
    newInstance, PALETTE, parseLayout, problems, rescaleDoc, saveState, untouched } from "./document.js";
import { el, injectCss } from "./dom.js";
import { paintMethods } from "./paint.js";
import { referenceMethods } from "./reference.js";
import { TOOLS, toolMethods } from "./tools.js";

const STOP = ["pointerdown", "pointermove", "pointerup", "mousedown", "mousemove", "mouseup", "wheel", "dblclick",
    "contextmenu", "keydown", "keyup"];

export class LayoutEditor {
    constructor(node, host) {
        this.node = node;
        this.host = host;       // {app, api} of the ComfyUI frontend
        this.doc = { width: 512, height: 512, caption: "", instances: [], seedRemoved: [] };
        this.sel = -1;
        this.tool = "box";
        this.brush = 0;         // image pixels; 0 = automatic (1/20 of the short side)
        this.grid = 0;          // snap grid in image pixels; 0 = off
        this.history = new History();
        this.lastJson = null;   // the layout_json text this editor last wrote or read
        this.drag = null;       // pointer interaction in progress
        this.poly = null;       // polygon being drawn: [[x, y], ...]
        this.hover = null;      // image-space pointer position
        this.ref = null;        // {filename, subfolder, type} or {dataUrl}
        this.refImg = null;
        this.error = "";
        this.popped = null;     // the pop-out overlay while it is open
        this.showJson = false;
        this.buildDom();
    }

    w(name) { return this.node.widgets?.find((w) => w.name === name); }

    buildDom() {
        injectCss();
        this.toolButtons = {};
        const tools = el("div", { className: "ide-bar" });
        for (const [id, label, , title] of TOOLS) {
            const b = el("button", { textContent: label, title, onclick: () => this.setTool(id) });
            b.dataset.tool = id;
            this.toolButtons[id] = b;
            tools.append(b);
        }
        this.brushInput = el("input", { type: "range", min: "1", max: "100", value: "0", title: "Brush size (image pixels)",
            oninput: () => { this.brush = Number(this.brushInput.value); this.render(); } });
        this.brushLabel = el("span", { textContent: "" });
        this.gridSelect = el("select", { title: "Snap boxes, points and polygon vertices to a grid (image pixels)",
            onchange: () => { this.grid = Number(this.gridSelect.value); this.render(); } });
        for (const g of [0, 4, 8, 16, 32, 64]) this.gridSelect.append(el("option", { value: String(g), textContent: g ? `snap ${g}` : "no snap" }));
        tools.append(el("span", { className: "ide-sep" }), el("span", { textContent: "size" }), this.brushInput, this.brushLabel,
            el("span", { className: "ide-sep" }), this.gridSelect);

        const act = (name, label, title, fn) => {
            const b = el("button", { textContent: label, title, onclick: fn });
            b.dataset.act = name;
            return b;
        };
        this.fileInput = el("input", { type: "file", accept: "image/*", style: { display: "none" },
            onchange: () => { const f = this.fileInput.files?.[0]; this.fileInput.value = ""; if (f) this.uploadRef(f); } });
        this.undoBtn = act("undo", "Undo", "Undo (Ctrl+Z)", () => this.undo());
        this.redoBtn = act("redo", "Redo", "Redo (Ctrl+Y / Ctrl+Shift+Z)", () => this.redo());
        this.popBtn = act("popout", "⤢ Pop out", "Edit in a large window (Esc or Done closes it)", () => (this.popped ? this.popIn() : this.popOut()));
        this.jsonBtn = act("json", "JSON", "Show or hide the layout_json text (what the editor stores)", () => this.setShowJson(!this.showJson, true));
        const actions = el("div", { className: "ide-bar" },
            this.popBtn,
            act("add", "+ Instance", "Add an empty instance and select it", () => this.addInstance()),
            act("add-box", "+ Box", "Add an instance with a box in the middle (for when there is no free space to drag one); move/resize it with Select", () => this.addBoxInstance()),
            this.undoBtn, this.redoBtn,
            act("clear", "Clear", "Remove every instance", () => this.clearAll()),
            el("span", { className: "ide-sep" }),
            act("ref", "Image…", "Reference image under the drawing (uploaded to the input folder)", () => this.fileInput.click()),
            act("ref-load", "From Load Image", "Use the image of a Load Image node (the one feeding this layout's preview, else the first one)", () => this.refFromLoadImage()),
            act("ref-size", "Use image size", "Set width/height to the reference image's size (multiple of 8)", () => this.useRefSize()),
            act("ref-clear", "No image", "Remove the reference image", () => this.setRef(null, true)),
            this.jsonBtn, this.fileInput);

        this.canvas = el("canvas");
        // Keys go to a (read-only, invisible) text input: both frontends leave keys typed into inputs alone, so
        // Ctrl+Z / Delete here undo and delete in the drawing, not in the graph.
        this.keys = el("input", { type: "text", readOnly: true, className: "ide-keys", tabIndex: -1, ariaLabel: "layout editor keys" });
        this.stage = el("div", { className: "ide-stage" }, this.canvas, this.keys);
        this.list = el("div", { className: "ide-list" });
        this.status = el("div", { className: "ide-status" });
        this.bars = [tools, actions];
        this.root = el("div", { className: "instdiff-editor" }, tools, actions, this.stage, this.list, this.status);
        this.away = el("div", { className: "ide-away", textContent: "Editing in the pop-out window" });
        this.away.hidden = true;
        this.frame = el("div", { className: "instdiff-frame" }, this.root, this.away);   // the node's DOM widget
        // Keep LiteGraph from treating clicks, drags and keys inside the editor as canvas/node actions.
        const stop = (e) => e.stopPropagation();
        for (const t of STOP) this.root.addEventListener(t, stop);
        this.root.addEventListener("keydown", (e) => this.onKey(e));

        const c = this.canvas;
        c.addEventListener("pointerdown", (e) => this.onDown(e));
        c.addEventListener("pointermove", (e) => this.onMove(e));
        c.addEventListener("pointerup", (e) => this.onUp(e));
        c.addEventListener("pointercancel", (e) => this.onUp(e));
        c.addEventListener("pointerleave", () => { this.hover = null; this.render(); });
        c.addEventListener("dblclick", (e) => { e.preventDefault(); if (this.tool === "polygon") this.closePolygon(); });
        c.addEventListener("contextmenu", (e) => e.preventDefault());
        if (window.ResizeObserver) new ResizeObserver(() => this.render()).observe(this.stage);
        this.setTool("box");
    }

    /** Height of the node's DOM widget at a node width: the canvas fills the width at the layout's aspect. */
    preferredHeight(nodeWidth) {
        const chrome = this.bars.reduce((s, b) => s + (b.offsetHeight || 24), 0) + (this.list.offsetHeight || 1) +
            (this.status.offsetHeight || 14) + 4 * 3 + 8 + 2;   // gaps, border and padding, rounding
        const canvasW = Math.max(64, nodeWidth - 28);   // 10 px host margin each side, our border and padding
        return Math.round(chrome + Math.min(2400, canvasW * this.doc.height / this.doc.width)) + 20;
    }

    /** The compact view drawn where the widget is shown outside the node (the 2026 Parameters panel): a thumbnail
     *  of the drawing at that width and a line saying where to edit it; the editor itself stays on the node. */
    drawCompact(ctx, width, height) {
        const k = Math.min((width - 4) / this.doc.width, (Math.max(40, height) - 22) / this.doc.height);
        ctx.fillStyle = "#8a8";
        ctx.font = "11px sans-serif";
        ctx.fillText(`${this.doc.instances.length} instance(s): edit on the node`, 2, 13);
        if (k > 0 && this.canvas.width > 1) ctx.drawImage(this.canvas, 2, 20, this.doc.width * k, this.doc.height * k);
    }

    setTool(id) {
        if (this.poly && id !== "polygon") this.closePolygon();
        this.tool = id;
        for (const [k, b] of Object.entries(this.toolButtons)) b.classList.toggle("on", k === id);
        this.canvas.style.cursor = id === "select" ? "default" : "crosshair";
        this.render();
    }

    refreshList() {
        const doc = this.doc;
        this.list.replaceChildren();
        const seededAt = (j) => isSeeded(doc.instances[j]) && doc.instances[j].origin !== "user";
        doc.instances.forEach((inst, i) => {
            const cap = el("input", { type: "text", value: inst.caption, placeholder: `caption of instance ${i}`,
                oninput: () => { inst.caption = cap.value; this.write(); this.render(); this.refreshStatus(); },
                onchange: () => this.commit(),
                onfocus: () => { if (this.sel !== i) { this.sel = i; this.markSelection(); this.render(); } } });
            const color = el("input", { type: "color", value: inst.color || PALETTE[i % PALETTE.length], title: "Colour",
                oninput: () => { inst.color = color.value; inst._mdirty = true; this.write(); this.render(); },
                onchange: () => this.commit() });
            const weight = el("input", { type: "number", className: "ide-weight", min: 0, max: 3, step: 0.05, value: inst.weight,
                title: "Weight: how strongly the model enforces this instance in its region (1 = official, 0 = off, up to 3)",
                oninput: () => { const v = Number(weight.value); if (weight.value !== "" && v >= 0 && v <= 3) { inst.weight = v; this.write(); } },
                onchange: () => this.commit() });
            const kinds = el("span", { className: "ide-kinds", title: "B box, P point, S scribble, G polygon, M mask",
                textContent: KINDS.map(([k, l]) => ((k === "mask" ? hasMask(inst) : inst[k] && (!Array.isArray(inst[k]) || inst[k].length)) ? l : "·")).join("") });
            const vis = el("button", { textContent: inst.hidden ? "◌" : "◉", title: inst.hidden ? "Hidden in the editor (still used): show" : "Hide in the editor (still used)",
                onclick: () => { inst.hidden = !inst.hidden; this.refreshList(); this.render(); this.saveView(); } });
            const seeded = seededAt(i);
            const num = el("span", { textContent: seeded ? `${i}⇣` : String(i), style: { minWidth: "14px", textAlign: "right" },
                title: seeded ? `From seed_layout instance ${inst.seed}` + (untouched(doc, inst) ? (inst.stale ? " (as of the last run)" : "") : " (edited: your version is kept)") : "" });
            const row = el("div", { className: "ide-row" + (i === this.sel ? " sel" : ""),
                onpointerdown: (e) => { if (e.target === row || e.target === kinds || e.target === num) { this.sel = i; this.markSelection(); this.render(); } } });
            if (seeded) row.dataset.seed = String(inst.seed);
            row.dataset.origin = inst.origin;
            const mk = (name, label, title, fn, disabled) => { const b = el("button", { textContent: label, title, onclick: fn, disabled: !!disabled }); b.dataset.act = name; return b; };
            row.dataset.index = String(i);
            row.append(num, color, cap, weight, kinds, vis,
                mk("up", "▲", "Move up (earlier in the prompt)", () => this.move(i, -1), i === 0 || seeded || seededAt(i - 1)),
                mk("down", "▼", "Move down", () => this.move(i, 1), i === doc.instances.length - 1 || seeded || seededAt(i + 1)),
                mk("delete", "✕", "Delete this instance (Delete)", () => this.remove(i)));
            this.list.append(row);
        });
        const listH = this.list.offsetHeight;
        if (listH !== this.listH) { this.listH = listH; if (!this.popped) this.fitNode(); }
        this.undoBtn.disabled = !this.history.undos.length;
        this.redoBtn.disabled = !this.history.redos.length;
        this.refreshStatus();
    }

    markSelection() {
        for (const row of this.list.children) row.classList.toggle("sel", Number(row.dataset.index) === this.sel);
    }

    refreshStatus() {
        const p = problems(this.doc);
        const seeded = this.doc.instances.filter((i) => i.origin !== "user").length;
        const stale = this.doc.instances.some((i) => i.stale);
        const info = `${this.doc.width}×${this.doc.height}, ${this.doc.instances.length} instance(s)` +
            (seeded || this.doc.seedRemoved.length ? `, ${seeded} from seed_layout (${this.doc.seedRemoved.length} deleted)` : "") +
            (stale ? "; dashed: seeded as of the last run, run again to update" : "");
        this.status.textContent = this.error ? `⚠ ${this.error}` : p.length ? `⚠ ${p.join("; ")}` : info;
        this.status.title = this.status.textContent;
        this.status.style.color = this.error || p.length ? "#e8b04a" : "#8a8";
    }

    // ---------------- state, widgets and history
    snapshot() { return saveState(this.doc, this.sel); }

    restore(state) {
        const { doc, sel } = loadState(state);
        this.doc = doc;
        this.sel = Math.min(sel ?? -1, doc.instances.length - 1);
        this.applyWidgetSize();
        this.write();
        this.history.base = this.snapshot();
        this.refreshList();
        this.render();
    }

    /** Put the drawing into the layout_json widget (no history entry). */
    write() {
        const wj = this.w("layout_json");
        const text = layoutToJson(this.doc);
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
        this.history.commit(this.snapshot());
        this.refreshList();
        this.saveView();
    }

    undo() {
        const state = this.history.undo(this.snapshot());
        if (state) { this.restore(state); this.saveView(); }
    }

    redo() {
        const state = this.history.redo(this.snapshot());
        if (state) { this.restore(state); this.saveView(); }
    }

    /** Follow the width/height/caption/layout_json widgets (load, paste, typing in them, API edits). */
    sync() {
        const wj = this.w("layout_json");
        if (!wj) return;
        let changed = false;
        if (wj.value !== this.lastJson) {
            this.lastJson = wj.value;
            try {
                const hidden = this.doc.instances.filter((i) => !untouched(this.doc, i)).map((i) => i.hidden);
                const doc = parseLayout(wj.value, this.widgetSize()[0], this.widgetSize()[1]);
                doc.instances.forEach((inst, i) => { inst.hidden = !!hidden[i]; });
                this.doc = keepShownSeeds(this.doc, doc);
                this.sel = Math.min(this.sel, this.doc.instances.length - 1);
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
            this.history.commit(this.snapshot());
            this.refreshList();
            this.render();
            this.fitNode();
        }
    }

    widgetSize() {
        const ww = Number(this.w("width")?.value), wh = Number(this.w("height")?.value);
        return [Number.isFinite(ww) && ww > 0 ? Math.round(ww) : this.doc.width, Number.isFinite(wh) && wh > 0 ? Math.round(wh) : this.doc.height];
    }

    applyWidgetSize() {
        const [ww, wh] = this.widgetSize();
        if (ww !== this.doc.width || wh !== this.doc.height) rescaleDoc(this.doc, ww, wh);
        const cap = this.w("caption")?.value;
        if (typeof cap === "string") this.doc.caption = cap;
    }

    /**
     * Show what the backend made of this node in its last run (its ui output): the merged layout, instance by
     * instance as it returned it. When layout_json changed since that run was queued, only its untouched seeded
     * instances are taken over (marked as of the last run) and the current drawing stays.
     */
    showBackend(shown) {
        if (!shown?.layout || !Array.isArray(shown.layout.instances)) return;
        let doc;
        try { doc = fromBackend(shown); } catch (exc) { this.error = `run result: ${exc.message}`; this.refreshStatus(); return; }
        const wj = this.w("layout_json");
        if (wj && shown.layout_json !== wj.value) {
            this.sync();
            const drawn = { ...this.doc, instances: this.doc.instances.filter((i) => !untouched(this.doc, i)) };
            doc = keepShownSeeds(doc, drawn);
        } else {
            const hidden = this.doc.instances.map((i) => i.hidden);
            doc.instances.forEach((inst, i) => { inst.hidden = !!hidden[i]; });
        }
        this.doc = doc;
        this.sel = Math.min(this.sel, doc.instances.length - 1);
        // An untouched seed gives the layout its size (the backend's rule): the size widgets follow the result.
        for (const [name, v] of [["width", doc.width], ["height", doc.height]]) {
            const w = this.w(name);
            if (w && w.value !== v) { w.value = v; w.callback?.(v); }
        }
        let stored = null;
        try { stored = JSON.parse(wj?.value || "{}"); } catch { /* shown by sync */ }
        if (wj && stored && (stored.width !== doc.width || stored.height !== doc.height)) this.write();
        this.lastJson = wj ? wj.value : null;
        this.history.base = this.snapshot();
        this.refreshList();
        this.render();
        this.fitNode();
    }

    /** The seed_layout input was disconnected: its untouched instances are gone (edits stay as records). */
    dropSeeds() {
        const before = this.doc.instances.length;
        this.doc.instances = this.doc.instances.filter((i) => i.origin !== "seed");
        if (this.doc.instances.length === before) return;
        this.sel = Math.min(this.sel, this.doc.instances.length - 1);
        this.history.base = this.snapshot();
        this.refreshList();
        this.render();
    }

    // View state kept in the editor's own widget (workflow only, never in the prompt).
    getView() {
        const hidden = [];
        this.doc.instances.forEach((inst, i) => { if (inst.hidden) hidden.push(i); });
        return { hidden, ref: this.ref && !this.ref.dataUrl ? this.ref : null, json: this.showJson, grid: this.grid };
    }

    setView(v) {
        this.sync();
        if (typeof v === "string") { try { v = JSON.parse(v); } catch { v = null; } }
        if (!v || typeof v !== "object") return;
        const hidden = new Set(Array.isArray(v.hidden) ? v.hidden : []);
        this.doc.instances.forEach((inst, i) => { inst.hidden = hidden.has(i); });
        this.setRef(v.ref || null, false);
        this.grid = Number.isInteger(v.grid) && v.grid >= 0 ? v.grid : 0;
        this.gridSelect.value = String(this.grid);
        this.setShowJson(!!v.json);
        this.history.base = this.snapshot();
        this.refreshList();
        this.render();
    }

    saveView() { this.node.setDirtyCanvas?.(true, false); }

    /** Show or hide the layout_json text widget (hidden by default: the drawing is the editor); the node takes
     *  the height it needs when the user toggles it. */
    setShowJson(show, byUser = false) {
        this.showJson = show;
        this.jsonBtn.classList.toggle("on", show);
        const wj = this.w("layout_json");
        if (wj) {
            if (!wj._instdiff) wj._instdiff = { type: wj.type, computeSize: wj.computeSize };
            wj.type = show ? wj._instdiff.type : "hidden";
            wj.hidden = !show;
            wj.computeSize = show ? wj._instdiff.computeSize : () => [0, -4];
            const e = wj.element || wj.inputEl;
            if (e) { e.hidden = !show; e.style.display = show ? "" : "none"; }
        }
        this.fitNode(byUser);
        this.saveView();
    }

    /** Resize the node to what its widgets need at its width (grows; shrinks only when asked). */
    fitNode(shrink = false) {
        const n = this.node;
        if (!n.size || !n.setSize) return;
        const min = n.computeSize?.();   // (the 2026 frontend takes an output array here, not a width)
        const h = min && (shrink || min[1] > n.size[1]) ? min[1] : n.size[1];
        n.setSize([n.size[0], h]);
        n.setDirtyCanvas?.(true, true);
    }

    // ---------------- the pop-out window
    popOut() {
        if (this.popped) return;
        const done = el("button", { textContent: "Done", title: "Close (Esc)", onclick: () => this.popIn() });
        done.dataset.act = "done";
        const panel = el("div", { className: "ide-panel" },
            el("div", { className: "ide-head" }, el("span", { textContent: `InstanceDiffusion layout — node #${this.node.id}` }), done));
        this.popped = el("div", { className: "instdiff-popout", onpointerdown: (e) => { if (e.target === this.popped) this.popIn(); } }, panel);
        for (const t of STOP) this.popped.addEventListener(t, (e) => e.stopPropagation());
        panel.append(this.root);
        this.away.hidden = false;
        document.body.append(this.popped);
        this.popBtn.textContent = "⤡ Back to node";
        this.keys.focus({ preventScroll: true });
        this.render();
    }

    popIn() {
        if (!this.popped) return;
        if (this.poly) this.closePolygon();
        this.frame.prepend(this.root);
        this.away.hidden = true;
        this.popped.remove();
        this.popped = null;
        this.popBtn.textContent = "⤢ Pop out";
        this.render();
    }

    // ---------------- instance operations
    newColor() {
        const used = new Set(this.doc.instances.map((i) => i.color));
        return PALETTE.find((c) => !used.has(c)) || PALETTE[this.doc.instances.length % PALETTE.length];
    }

    addInstance(select = true) {
        if (this.doc.instances.length >= MAX_INSTANCES) { this.error = `at most ${MAX_INSTANCES} instances`; this.refreshStatus(); return null; }
        const inst = newInstance("", this.newColor());
        this.doc.instances.push(inst);
        if (select) this.sel = this.doc.instances.length - 1;
        this.commit();
        this.render();
        // Focus the caption so the user can type right away.
        this.list.querySelector(`.ide-row[data-index="${this.doc.instances.length - 1}"] input[type=text]`)?.focus();
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

    /** The selected instance, or a new one when none is selected or `needFree(inst)` says it is taken. */
    target(needFree) {
        let inst = this.doc.instances[this.sel];
        if (!inst || (needFree && needFree(inst))) {
            if (this.doc.instances.length >= MAX_INSTANCES) { this.error = `at most ${MAX_INSTANCES} instances`; this.refreshStatus(); return null; }
            inst = newInstance("", this.newColor());
            this.doc.instances.push(inst);
            this.sel = this.doc.instances.length - 1;
            this.refreshList();
        }
        return inst;
    }

    move(i, d) {
        const j = i + d, a = this.doc.instances;
        if (j < 0 || j >= a.length) return;
        if ([a[i], a[j]].some((x) => x.origin !== "user")) {
            this.error = "seeded instances keep the seed's order (they come first)"; this.refreshStatus(); return;
        }
        [a[i], a[j]] = [a[j], a[i]];
        if (this.sel === i) this.sel = j; else if (this.sel === j) this.sel = i;
        this.commit();
        this.render();
    }

    remove(i) {
        const inst = this.doc.instances[i];
        if (!inst) return;
        if (inst.origin !== "user" && isSeeded(inst) && !this.doc.seedRemoved.includes(inst.seed)) this.doc.seedRemoved.push(inst.seed);
        this.doc.instances.splice(i, 1);
        if (this.sel >= this.doc.instances.length) this.sel = this.doc.instances.length - 1;
        this.commit();
        this.render();
    }

    clearAll() {
        this.poly = null;
        const removed = new Set(this.doc.seedRemoved);
        for (const inst of this.doc.instances) if (inst.origin !== "user" && isSeeded(inst)) removed.add(inst.seed);
        this.doc.seedRemoved = [...removed];
        this.doc.instances = [];
        this.sel = -1;
        this.commit();
        this.render();
    }
}

Object.assign(LayoutEditor.prototype, toolMethods, paintMethods, referenceMethods);
