// Layout editor document: the drawing (a document.js document), its selection and undo history, kept in the node's
// layout_json widget, and the instance operations. Owns doc, sel, history, lastJson and error; tells the editor
// (ed: refreshList, refreshStatus, render, fitNode, ...) what to show. No DOM, no side effects on import.
import { MAX_INSTANCES, PALETTE } from "./constants.js";
import { fromBackend, History, isSeeded, keepShownSeeds, layoutToJson, loadState, newInstance, parseLayout, rescaleDoc,
    saveState, untouched } from "./document.js";
import { BOX } from "./kinds.js";

export class LayoutDocument {
    constructor(node, ed) {
        this.node = node;
        this.ed = ed;
        this.doc = { width: 512, height: 512, caption: "", instances: [], seedRemoved: [] };
        this.sel = -1;
        this.history = new History();
        this.lastJson = null;   // the layout_json text this editor last wrote or read
        this.error = "";        // shown in the status line until the next write
    }

    w(name) { return this.node.widgets?.find((w) => w.name === name); }

    warn(message) { this.error = message; this.ed.refreshStatus(); }

    clearWarning() { this.error = ""; }

    select(i) {
        this.sel = i;
        this.ed.markSelection();
    }

    // ---------------- state, widgets and history
    snapshot() { return saveState(this.doc, this.sel); }

    /** Forget the undo steps: the current state is the base. */
    resetHistory() { this.history.reset(this.snapshot()); }

    /** The current state is the last committed one (no undo step). */
    rebase() { this.history.base = this.snapshot(); }

    restore(state) {
        const { doc, sel } = loadState(state);
        this.doc = doc;
        this.sel = Math.min(sel ?? -1, doc.instances.length - 1);
        this.applyWidgetSize();
        this.write();
        this.rebase();
        this.ed.refreshList();
        this.ed.render();
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
        this.ed.refreshList();
        this.ed.saveView();
    }

    undo() { this.step(this.history.undo(this.snapshot())); }

    redo() { this.step(this.history.redo(this.snapshot())); }

    step(state) {
        if (state) { this.restore(state); this.ed.saveView(); }
    }

    /** Follow the width/height/caption/layout_json widgets (load, paste, typing in them, API edits). */
    sync() {
        const wj = this.w("layout_json");
        if (!wj) return;
        let changed = false;
        if (wj.value !== this.lastJson) {
            this.lastJson = wj.value;
            if (!this.read(wj.value)) return;
            changed = true;
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
            this.ed.refreshList();
            this.ed.render();
            this.ed.fitNode();
        }
    }

    /** Take layout_json text typed or loaded elsewhere (the editor's hidden flags and shown seeds stay). */
    read(text) {
        try {
            const hidden = this.doc.instances.filter((i) => !untouched(this.doc, i)).map((i) => i.hidden);
            const doc = parseLayout(text, ...this.widgetSize());
            doc.instances.forEach((inst, i) => { inst.hidden = !!hidden[i]; });
            this.doc = keepShownSeeds(this.doc, doc);
            this.sel = Math.min(this.sel, this.doc.instances.length - 1);
            this.error = "";
            return true;
        } catch (exc) {
            this.warn(`layout_json: ${exc.message}`);
            return false;
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
        try { doc = fromBackend(shown); } catch (exc) { this.warn(`run result: ${exc.message}`); return; }
        const wj = this.w("layout_json");
        doc = wj && shown.layout_json !== wj.value ? this.keepDrawing(doc) : this.keepHidden(doc);
        this.doc = doc;
        this.sel = Math.min(this.sel, doc.instances.length - 1);
        this.followSize(doc, wj);
        this.lastJson = wj ? wj.value : null;
        this.rebase();
        this.ed.refreshList();
        this.ed.render();
        this.ed.fitNode();
    }

    /** The run's untouched seeds on top of the current drawing (layout_json changed since the run was queued). */
    keepDrawing(shownDoc) {
        this.sync();
        const drawn = { ...this.doc, instances: this.doc.instances.filter((i) => !untouched(this.doc, i)) };
        return keepShownSeeds(shownDoc, drawn);
    }

    keepHidden(doc) {
        const hidden = this.doc.instances.map((i) => i.hidden);
        doc.instances.forEach((inst, i) => { inst.hidden = !!hidden[i]; });
        return doc;
    }

    /** An untouched seed gives the layout its size (the backend's rule): the size widgets follow the result. */
    followSize(doc, wj) {
        for (const [name, v] of [["width", doc.width], ["height", doc.height]]) {
            const w = this.w(name);
            if (w && w.value !== v) { w.value = v; w.callback?.(v); }
        }
        let stored = null;
        try { stored = JSON.parse(wj?.value || "{}"); } catch { /* shown by sync */ }
        if (wj && stored && (stored.width !== doc.width || stored.height !== doc.height)) this.write();
    }

    /** The seed_layout input was disconnected: its untouched instances are gone (edits stay as records). */
    dropSeeds() {
        const before = this.doc.instances.length;
        this.doc.instances = this.doc.instances.filter((i) => i.origin !== "seed");
        if (this.doc.instances.length === before) return;
        this.sel = Math.min(this.sel, this.doc.instances.length - 1);
        this.rebase();
        this.ed.refreshList();
        this.ed.render();
    }

    // ---------------- instance operations
    newColor() {
        const used = new Set(this.doc.instances.map((i) => i.color));
        return PALETTE.find((c) => !used.has(c)) || PALETTE[this.doc.instances.length % PALETTE.length];
    }

    /** True (and said in the status line) when no instance can be added. */
    full() {
        if (this.doc.instances.length < MAX_INSTANCES) return false;
        this.warn(`at most ${MAX_INSTANCES} instances`);
        return true;
    }

    addInstance(select = true) {
        if (this.full()) return null;
        const inst = newInstance("", this.newColor());
        this.doc.instances.push(inst);
        if (select) this.sel = this.doc.instances.length - 1;
        this.commit();
        this.ed.render();
        this.ed.focusCaption(this.doc.instances.length - 1);   // so the user can type right away
        return inst;
    }

    /** A new instance with a box in the middle (a quarter of the image), selected, with the Select tool on. */
    addBoxInstance() {
        const inst = this.addInstance(false);
        if (!inst) return null;
        inst.box = BOX.middle(this.doc.width, this.doc.height);
        this.sel = this.doc.instances.length - 1;
        this.ed.setTool("select");
        this.commit();
        this.ed.render();
        this.ed.focusCaption(this.sel);
        return inst;
    }

    /** The selected instance, or a new one when none is selected or `needFree(inst)` says it is taken. */
    target(needFree) {
        let inst = this.doc.instances[this.sel];
        if (!inst || (needFree && needFree(inst))) {
            if (this.full()) return null;
            inst = newInstance("", this.newColor());
            this.doc.instances.push(inst);
            this.sel = this.doc.instances.length - 1;
            this.ed.refreshList();
        }
        return inst;
    }

    move(i, d) {
        const j = i + d, a = this.doc.instances;
        if (j < 0 || j >= a.length) return;
        if ([a[i], a[j]].some((x) => x.origin !== "user")) { this.warn("seeded instances keep the seed's order (they come first)"); return; }
        [a[i], a[j]] = [a[j], a[i]];
        if (this.sel === i) this.sel = j; else if (this.sel === j) this.sel = i;
        this.commit();
        this.ed.render();
    }

    remove(i) {
        const inst = this.doc.instances[i];
        if (!inst) return;
        if (inst.origin !== "user" && isSeeded(inst) && !this.doc.seedRemoved.includes(inst.seed)) this.doc.seedRemoved.push(inst.seed);
        this.doc.instances.splice(i, 1);
        if (this.sel >= this.doc.instances.length) this.sel = this.doc.instances.length - 1;
        this.commit();
        this.ed.render();
    }

    clearAll() {
        const removed = new Set(this.doc.seedRemoved);
        for (const inst of this.doc.instances) if (inst.origin !== "user" && isSeeded(inst)) removed.add(inst.seed);
        this.doc.seedRemoved = [...removed];
        this.doc.instances = [];
        this.sel = -1;
        this.commit();
        this.ed.render();
    }
}
