// The layout editor of one InstanceDiffusion Layout node, composed of its parts: the document (model.js: the drawing,
// selection, undo, the node's layout_json widget), the tools (tools.js: pointer and keys), the reference image
// (reference.js), the painter (paint.js) and the view (view.js: the DOM). Each part owns its own fields and reaches
// the others through this object. The host's app/api are passed in; no host imports, no side effects on import.
import { LayoutDocument } from "./model.js";
import { Painter } from "./paint.js";
import { Reference } from "./reference.js";
import { Tools } from "./tools.js";
import { View } from "./view.js";

export class LayoutEditor {
    constructor(node, host) {
        this.node = node;
        this.host = host;       // {app, api} of the ComfyUI frontend
        this.widget = null;     // the node's DOM widget showing view.frame
        this.document = new LayoutDocument(node, this);
        this.tools = new Tools(this);
        this.reference = new Reference(this);
        this.painter = new Painter(this);
        this.view = new View(this);
        this.tools.setTool("box");
    }

    /** The drawing: {width, height, caption, instances, seedRemoved} (document.js). */
    get doc() { return this.document.doc; }

    get frame() { return this.view.frame; }

    get popped() { return this.view.popped; }

    // ---------------- what the parts ask of each other
    render() { this.painter.render(); }

    refreshList() { this.view.refreshList(); }

    refreshStatus() { this.view.refreshStatus(); }

    markSelection() { this.view.markSelection(); }

    focusCaption(i) { this.view.focusCaption(i); }

    fitNode(shrink = false) { this.view.fitNode(shrink); }

    setTool(id) { this.tools.setTool(id); }

    saveView() { this.node.setDirtyCanvas?.(true, false); }

    select(i) {
        this.document.select(i);
        this.render();
    }

    clearAll() {
        this.tools.cancelPending();
        this.document.clearAll();
    }

    // ---------------- what the node registration (instdiff_layout_editor.js) calls
    sync() { this.document.sync(); }

    resetHistory() { this.document.resetHistory(); }

    showBackend(shown) { this.document.showBackend(shown); }

    dropSeeds() { this.document.dropSeeds(); }

    popIn() { this.view.popIn(); }

    setShowJson(show, byUser = false) { this.view.setShowJson(show, byUser); }

    preferredHeight(nodeWidth) { return this.view.preferredHeight(nodeWidth); }

    drawCompact(ctx, width, height) { this.view.drawCompact(ctx, width, height); }

    /** View state kept in the editor's own widget (workflow only, never in the prompt). */
    getView() {
        const hidden = [], ref = this.reference.ref;
        this.doc.instances.forEach((inst, i) => { if (inst.hidden) hidden.push(i); });
        return { hidden, ref: ref && !ref.dataUrl ? ref : null, json: this.view.showJson, grid: this.tools.grid };
    }

    setView(v) {
        this.sync();
        if (typeof v === "string") { try { v = JSON.parse(v); } catch { v = null; } }
        if (!v || typeof v !== "object") return;
        const hidden = new Set(Array.isArray(v.hidden) ? v.hidden : []);
        this.doc.instances.forEach((inst, i) => { inst.hidden = hidden.has(i); });
        this.reference.set(v.ref || null, false);
        this.tools.setGrid(Number.isInteger(v.grid) && v.grid >= 0 ? v.grid : 0);
        this.view.showGrid(this.tools.grid);
        this.setShowJson(!!v.json);
        this.document.rebase();
        this.refreshList();
        this.render();
    }
}
