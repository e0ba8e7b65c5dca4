// Layout editor view: toolbars, canvas, instance list, status line and the pop-out window. Owns the DOM and how the
// node fits it; the buttons act on the editor's document, tools and reference (ed). No host imports, no side effects.
import { problems } from "./document.js";
import { button, el, injectCss } from "./dom.js";
import { instanceRow } from "./list.js";

const STOP = ["pointerdown", "pointermove", "pointerup", "mousedown", "mousemove", "mouseup", "wheel", "dblclick",
    "contextmenu", "keydown", "keyup"];

export class View {
    constructor(ed) {
        this.ed = ed;
        this.popped = null;     // the pop-out overlay while it is open
        this.showJson = false;  // the layout_json text widget shown on the node
        this.listH = undefined; // the instance list's height when the node was last fitted to it
        injectCss();
        const bars = [this.toolBar(), this.actionBar()];
        this.canvas = el("canvas");
        // Keys go to a (read-only, invisible) text input: both frontends leave keys typed into inputs alone, so
        // Ctrl+Z / Delete here undo and delete in the drawing, not in the graph.
        this.keys = el("input", { type: "text", readOnly: true, className: "ide-keys", tabIndex: -1, ariaLabel: "layout editor keys" });
        this.stage = el("div", { className: "ide-stage" }, this.canvas, this.keys);
        this.list = el("div", { className: "ide-list" });
        this.status = el("div", { className: "ide-status" });
        this.bars = bars;
        this.root = el("div", { className: "instdiff-editor" }, ...bars, this.stage, this.list, this.status);
        this.away = el("div", { className: "ide-away", textContent: "Editing in the pop-out window" });
        this.away.hidden = true;
        this.frame = el("div", { className: "instdiff-frame" }, this.root, this.away);   // the node's DOM widget
        this.listen();
    }

    toolBar() {
        const tools = this.ed.tools, bar = el("div", { className: "ide-bar" });
        this.toolButtons = new Map();
        for (const tool of tools.list) {
            const b = el("button", { textContent: tool.label, title: tool.title, onclick: () => tools.setTool(tool.id) });
            b.dataset.tool = tool.id;
            this.toolButtons.set(tool, b);
            bar.append(b);
        }
        this.brushInput = el("input", { type: "range", min: "1", max: "100", value: "0", title: "Brush size (image pixels)",
            oninput: () => tools.setBrush(Number(this.brushInput.value)) });
        this.brushLabel = el("span", { textContent: "" });
        this.gridSelect = el("select", { title: "Snap boxes, points and polygon vertices to a grid (image pixels)",
            onchange: () => tools.setGrid(Number(this.gridSelect.value)) });
        for (const g of [0, 4, 8, 16, 32, 64]) this.gridSelect.append(el("option", { value: String(g), textContent: g ? `snap ${g}` : "no snap" }));
        bar.append(el("span", { className: "ide-sep" }), el("span", { textContent: "size" }), this.brushInput, this.brushLabel,
            el("span", { className: "ide-sep" }), this.gridSelect);
        return bar;
    }

    actionBar() {
        const { document: doc, reference: ref } = this.ed;
        this.fileInput = el("input", { type: "file", accept: "image/*", style: { display: "none" },
            onchange: () => { const f = this.fileInput.files?.[0]; this.fileInput.value = ""; if (f) ref.upload(f); } });
        this.undoBtn = button("undo", "Undo", "Undo (Ctrl+Z)", () => doc.undo());
        this.redoBtn = button("redo", "Redo", "Redo (Ctrl+Y / Ctrl+Shift+Z)", () => doc.redo());
        this.popBtn = button("popout", "⤢ Pop out", "Edit in a large window (Esc or Done closes it)", () => (this.popped ? this.popIn() : this.popOut()));
        this.jsonBtn = button("json", "JSON", "Show or hide the layout_json text (what the editor stores)", () => this.setShowJson(!this.showJson, true));
        return el("div", { className: "ide-bar" },
            this.popBtn,
            button("add", "+ Instance", "Add an empty instance and select it", () => doc.addInstance()),
            button("add-box", "+ Box", "Add an instance with a box in the middle (for when there is no free space to drag one); move/resize it with Select", () => doc.addBoxInstance()),
            this.undoBtn, this.redoBtn,
            button("clear", "Clear", "Remove every instance", () => this.ed.clearAll()),
            el("span", { className: "ide-sep" }),
            button("ref", "Image…", "Reference image under the drawing (uploaded to the input folder)", () => this.fileInput.click()),
            button("ref-load", "From Load Image", "Use the image of a Load Image node (the one feeding this layout's preview, else the first one)", () => ref.fromLoadImage()),
            button("ref-size", "Use image size", "Set width/height to the reference image's size (multiple of 8)", () => ref.useSize()),
            button("ref-clear", "No image", "Remove the reference image", () => ref.set(null, true)),
            this.jsonBtn, this.fileInput);
    }

    /** Pointer and keys to the tools; LiteGraph does not see clicks, drags and keys inside the editor. */
    listen() {
        const tools = this.ed.tools, c = this.canvas;
        const stop = (e) => e.stopPropagation();
        for (const t of STOP) this.root.addEventListener(t, stop);
        this.root.addEventListener("keydown", (e) => tools.onKey(e));
        c.addEventListener("pointerdown", (e) => tools.onDown(e));
        c.addEventListener("pointermove", (e) => tools.onMove(e));
        c.addEventListener("pointerup", (e) => tools.onUp(e));
        c.addEventListener("pointercancel", (e) => tools.onUp(e));
        c.addEventListener("pointerleave", () => tools.onLeave());
        c.addEventListener("dblclick", (e) => tools.onDoubleClick(e));
        c.addEventListener("contextmenu", (e) => e.preventDefault());
        if (window.ResizeObserver) new ResizeObserver(() => this.ed.render()).observe(this.stage);
    }

    showTool(tool) {
        for (const [t, b] of this.toolButtons) b.classList.toggle("on", t === tool);
        this.canvas.style.cursor = tool.cursor || "crosshair";
    }

    showGrid(grid) { this.gridSelect.value = String(grid); }

    /** Height of the node's DOM widget at a node width: the canvas fills the width at the layout's aspect. */
    preferredHeight(nodeWidth) {
        const doc = this.ed.document.doc;
        const chrome = this.bars.reduce((s, b) => s + (b.offsetHeight || 24), 0) + (this.list.offsetHeight || 1) +
            (this.status.offsetHeight || 14) + 4 * 3 + 8 + 2;   // gaps, border and padding, rounding
        const canvasW = Math.max(64, nodeWidth - 28);   // 10 px host margin each side, our border and padding
        return Math.round(chrome + Math.min(2400, canvasW * doc.height / doc.width)) + 20;
    }

    /** The compact view drawn where the widget is shown outside the node (the 2026 Parameters panel): a thumbnail
     *  of the drawing at that width and a line saying where to edit it; the editor itself stays on the node. */
    drawCompact(ctx, width, height) {
        const doc = this.ed.document.doc;
        const k = Math.min((width - 4) / doc.width, (Math.max(40, height) - 22) / doc.height);
        ctx.fillStyle = "#8a8";
        ctx.font = "11px sans-serif";
        ctx.fillText(`${doc.instances.length} instance(s): edit on the node`, 2, 13);
        if (k > 0 && this.canvas.width > 1) ctx.drawImage(this.canvas, 2, 20, doc.width * k, doc.height * k);
    }

    refreshList() {
        const doc = this.ed.document;
        this.list.replaceChildren(...doc.doc.instances.map((inst, i) => instanceRow(this.ed, i)));
        const listH = this.list.offsetHeight;
        if (listH !== this.listH) { this.listH = listH; if (!this.popped) this.fitNode(); }
        this.undoBtn.disabled = !doc.history.undos.length;
        this.redoBtn.disabled = !doc.history.redos.length;
        this.refreshStatus();
    }

    markSelection() {
        for (const row of this.list.children) row.classList.toggle("sel", Number(row.dataset.index) === this.ed.document.sel);
    }

    focusCaption(i) { this.list.querySelector(`.ide-row[data-index="${i}"] input[type=text]`)?.focus(); }

    refreshStatus() {
        const { doc, error } = this.ed.document, p = problems(doc);
        const seeded = doc.instances.filter((i) => i.origin !== "user").length;
        const stale = doc.instances.some((i) => i.stale);
        const info = `${doc.width}×${doc.height}, ${doc.instances.length} instance(s)` +
            (seeded || doc.seedRemoved.length ? `, ${seeded} from seed_layout (${doc.seedRemoved.length} deleted)` : "") +
            (stale ? "; dashed: seeded as of the last run, run again to update" : "");
        this.status.textContent = error ? `⚠ ${error}` : p.length ? `⚠ ${p.join("; ")}` : info;
        this.status.title = this.status.textContent;
        this.status.style.color = error || p.length ? "#e8b04a" : "#8a8";
    }

    /** Show or hide the layout_json text widget (hidden by default: the drawing is the editor); the node takes
     *  the height it needs when the user toggles it. */
    setShowJson(show, byUser = false) {
        this.showJson = show;
        this.jsonBtn.classList.toggle("on", show);
        const wj = this.ed.document.w("layout_json");
        if (wj) {
            if (!wj._instdiff) wj._instdiff = { type: wj.type, computeSize: wj.computeSize };
            wj.type = show ? wj._instdiff.type : "hidden";
            wj.hidden = !show;
            wj.computeSize = show ? wj._instdiff.computeSize : () => [0, -4];
            const e = wj.element || wj.inputEl;
            if (e) { e.hidden = !show; e.style.display = show ? "" : "none"; }
        }
        this.fitNode(byUser);
        this.ed.saveView();
    }

    /** Resize the node to what its widgets need at its width (grows; shrinks only when asked). */
    fitNode(shrink = false) {
        const n = this.ed.node;
        if (!n.size || !n.setSize) return;
        const min = n.computeSize?.();   // (the 2026 frontend takes an output array here, not a width)
        const h = min && (shrink || min[1] > n.size[1]) ? min[1] : n.size[1];
        n.setSize([n.size[0], h]);
        n.setDirtyCanvas?.(true, true);
    }

    // ---------------- the pop-out window
    popOut() {
        if (this.popped) return;
        const done = button("done", "Done", "Close (Esc)", () => this.popIn());
        const panel = el("div", { className: "ide-panel" },
            el("div", { className: "ide-head" }, el("span", { textContent: `InstanceDiffusion layout — node #${this.ed.node.id}` }), done));
        this.popped = el("div", { className: "instdiff-popout", onpointerdown: (e) => { if (e.target === this.popped) this.popIn(); } }, panel);
        for (const t of STOP) this.popped.addEventListener(t, (e) => e.stopPropagation());
        panel.append(this.root);
        this.away.hidden = false;
        document.body.append(this.popped);
        this.popBtn.textContent = "⤡ Back to node";
        this.keys.focus({ preventScroll: true });
        this.ed.render();
    }

    popIn() {
        if (!this.popped) return;
        this.ed.tools.finishPending();
        this.frame.prepend(this.root);
        this.away.hidden = true;
        this.popped.remove();
        this.popped = null;
        this.popBtn.textContent = "⤢ Pop out";
        this.ed.render();
    }
}
