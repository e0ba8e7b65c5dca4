// InstanceDiffusion layout editor: registers the canvas DOM widget on the "InstanceDiffusionLayout" node.
//
// The drawing IS the node's `layout_json` widget value (the layout schema of instdiff_model/layout.py, image-pixel
// coordinates), so it is saved with the workflow, restored on load/paste and sent to the backend in the prompt.
// The editor's own widget keeps only view state (hidden instances, reference image, JSON shown, snap grid) and is
// not sent in the prompt. After a run the node's ui output (`instdiff_layout`: the layout as the backend merged
// it, each instance with its origin) is what the editor shows. The editor itself lives in ./instdiff_editor/
// (editor.js composes its parts; document.js, kinds.js and the codecs are pure; the parts get the host's app/api from
// here).
// Works with the plain-JS LiteGraph frontend (2024) and the Vue frontend (2025+): both serve ../../scripts/app.js.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { LayoutEditor } from "./instdiff_editor/editor.js";

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

/** After the prototype's own `name` method, `after(node, args)`; the method's result is kept. */
function chain(proto, name, after) {
    const own = proto[name];
    proto[name] = function () {
        const r = own?.apply(this, arguments);
        after(this, arguments);
        return r;
    };
}

/** The editor follows the other widgets: callbacks fire on user edits; a poll catches configure/paste/API changes. */
function followWidgets(node, editor) {
    for (const name of ["width", "height", "caption", "layout_json"]) {
        const w = node.widgets?.find((x) => x.name === name);
        if (!w) continue;
        const cb = w.callback;
        w.callback = function () { const res = cb?.apply(this, arguments); queueMicrotask(() => editor.sync()); return res; };
    }
    const timer = setInterval(() => { if (editor.frame.isConnected || editor.popped) editor.sync(); }, 400);
    const onRemoved = node.onRemoved;
    node.onRemoved = function () { clearInterval(timer); editor.popIn(); return onRemoved?.apply(this, arguments); };
}

function addEditor(node) {
    const editor = new LayoutEditor(node, { app, api });
    node.instdiffEditor = editor;
    const widget = node.addDOMWidget("layout_editor", "instdiff_layout_editor", editor.frame, {
        serialize: false,          // not an input of the node: stays out of the API prompt
        hideOnZoom: false,
        getValue: () => editor.getView(),
        setValue: (v) => editor.setView(v),
        getMinHeight: () => editor.preferredHeight(node.size?.[0] || 440),
        getHeight: () => editor.preferredHeight(node.size?.[0] || 440),
        afterResize: () => editor.render(),
        onDraw: () => editor.sync(),
    });
    editor.widget = widget;
    keepNodeGeometry(widget, editor);
    followWidgets(node, editor);
    editor.sync();
    editor.setShowJson(false);
    editor.resetHistory();
    editor.refreshList();
    const [w0, h0] = node.size || [0, 0];
    node.setSize?.([Math.max(w0, 440), h0]);
    editor.fitNode();
    editor.render();
}

// Whether the node's seed_layout input is linked (node.isInputConnected: 2026 frontends deprecate input.link).
function seedConnected(node) {
    const slot = node.inputs?.findIndex((i) => i.name === "seed_layout") ?? -1;
    return slot >= 0 && node.isInputConnected(slot);
}

app.registerExtension({
    name: "instancediffusion.layoutEditor",  // under the pack's namespace (comfy-test lint)
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (nodeData?.name !== NODE) return;
        const proto = nodeType.prototype;
        chain(proto, "onNodeCreated", (node) => addEditor(node));
        chain(proto, "onExecuted", (node, [message]) => {
            const shown = message?.instdiff_layout?.[0];
            if (shown && node.instdiffEditor) node.instdiffEditor.showBackend(shown);
        });
        chain(proto, "onConnectionsChange", (node) => {
            if (node.instdiffEditor && !seedConnected(node)) node.instdiffEditor.dropSeeds();
        });
        chain(proto, "onConfigure", (node) => {
            const ed = node.instdiffEditor;
            if (ed) { ed.sync(); ed.resetHistory(); ed.refreshList(); ed.render(); }
        });
    },
});
