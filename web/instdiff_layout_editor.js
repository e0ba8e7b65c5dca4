// InstanceDiffusion layout editor: registers the canvas DOM widget on the "InstanceDiffusionLayout" node.
//
// The drawing IS the node's `layout_json` widget value (schema "instdiff.layout", version 1, image-pixel
// coordinates), so it is saved with the workflow, restored on load/paste and sent to the backend in the prompt.
// The editor's own widget keeps only view state (hidden instances, reference image, JSON shown, snap grid) and is
// not sent in the prompt. After a run the node's ui output (`instdiff_layout`: the layout as the backend merged
// it, each instance with its origin) is what the editor shows. The editor itself lives in ./instdiff_editor/
// (document.js is pure; view/tools/paint/reference take the host's app/api from here).
// Works with the plain-JS LiteGraph frontend (2024) and the Vue frontend (2025+): both serve ../../scripts/app.js.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { LayoutEditor } from "./instdiff_editor/view.js";

const NODE = "InstanceDiffusionLayout";

/**
 * The editor's size and place come from the node, whoever else draws the widget. In classic mode the 2026
 * frontend's right-side Parameters panel draws a selected node's DOM widget on its own canvas, writing the panel's
 * width and y = 0 into the widget; the canvas overlay would then shrink and shift the editor in the node. So the
 * widget has no width of its own (the overlay takes the node's), and a draw on any canvas but the graph's restores
 * the node's y and shows a compact view of the drawing instead.
 */
function keepNodeGeometry(widget, editor) {
    Object.defineProperty(widget, "width", { get: () => undefined, set: () => {}, configurable: true });
    const draw = widget.draw;
    let y = widget.y;
    widget.draw = function (ctx, node, width, posY, height) {
        if (!ctx?.canvas || ctx.canvas === app.canvas?.canvas) { y = this.y; return draw?.apply(this, arguments); }
        if (y !== undefined) this.y = y;
        editor.drawCompact(ctx, width, height);
    };
}

app.registerExtension({
    name: "InstanceDiffusion.LayoutEditor",
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (nodeData?.name !== NODE) return;
        const onNodeCreated = nodeType.prototype.onNodeCreated;
        nodeType.prototype.onNodeCreated = function () {
            const r = onNodeCreated?.apply(this, arguments);
            const editor = new LayoutEditor(this, { app, api });
            this.instdiffEditor = editor;
            const widget = this.addDOMWidget("layout_editor", "instdiff_layout_editor", editor.frame, {
                serialize: false,          // not an input of the node: stays out of the API prompt
                hideOnZoom: false,
                getValue: () => editor.getView(),
                setValue: (v) => editor.setView(v),
                getMinHeight: () => editor.preferredHeight(this.size?.[0] || 440),
                getHeight: () => editor.preferredHeight(this.size?.[0] || 440),
                afterResize: () => editor.render(),
                onDraw: () => editor.sync(),
            });
            editor.widget = widget;
            keepNodeGeometry(widget, editor);
            // Follow the other widgets: callbacks fire on user edits; the poll catches configure/paste/API changes.
            for (const name of ["width", "height", "caption", "layout_json"]) {
                const w = this.widgets?.find((x) => x.name === name);
                if (!w) continue;
                const cb = w.callback;
                w.callback = function () { const res = cb?.apply(this, arguments); queueMicrotask(() => editor.sync()); return res; };
            }
            const timer = setInterval(() => { if (editor.frame.isConnected || editor.popped) editor.sync(); }, 400);
            const onRemoved = this.onRemoved;
            this.onRemoved = function () { clearInterval(timer); editor.popIn(); return onRemoved?.apply(this, arguments); };
            editor.sync();
            editor.setShowJson(false);
            editor.history.reset(editor.snapshot());
            editor.refreshList();
            const [w0, h0] = this.size || [0, 0];
            this.setSize?.([Math.max(w0, 440), h0]);
            editor.fitNode();
            editor.render();
            return r;
        };
        const onExecuted = nodeType.prototype.onExecuted;
        nodeType.prototype.onExecuted = function (message) {
            const r = onExecuted?.apply(this, arguments);
            const shown = message?.instdiff_layout?.[0];
            if (shown && this.instdiffEditor) this.instdiffEditor.showBackend(shown);
            return r;
        };
        const onConnectionsChange = nodeType.prototype.onConnectionsChange;
        nodeType.prototype.onConnectionsChange = function () {
            const r = onConnectionsChange?.apply(this, arguments);
            const input = this.inputs?.find((i) => i.name === "seed_layout");
            if (this.instdiffEditor && (!input || input.link === null || input.link === undefined)) this.instdiffEditor.dropSeeds();
            return r;
        };
        const onConfigure = nodeType.prototype.onConfigure;
        nodeType.prototype.onConfigure = function () {
            const r = onConfigure?.apply(this, arguments);
            const ed = this.instdiffEditor;
            if (ed) { ed.sync(); ed.history.reset(ed.snapshot()); ed.refreshList(); ed.render(); }
            return r;
        };
    },
});
