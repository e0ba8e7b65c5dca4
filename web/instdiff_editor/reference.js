// Layout editor reference image: an image under the drawing (uploaded, or a Load Image node's), and its size.
// Owns the reference and its loaded image; the host's api/app come in through the editor (ed.host). No side effects.
import { MAX_SIDE } from "./constants.js";
import { clamp } from "./geometry.js";

const VIEW_TYPE = / \[(input|output|temp)\]$/;   // "name.png [input]": the folder a Load Image value names

export class Reference {
    constructor(ed) {
        this.ed = ed;
        this.ref = null;        // {filename, subfolder, type} or {dataUrl}
        this.refImg = null;     // the loaded image, once loaded
    }

    set(ref, save) {
        this.ref = ref;
        this.refImg = null;
        if (ref) {
            const img = new Image();
            img.onload = () => { if (this.ref === ref) { this.refImg = img; this.ed.render(); } };
            img.onerror = () => { if (this.ref === ref) this.ed.document.warn("reference image could not be loaded"); };
            img.src = ref.dataUrl || this.ed.host.api.apiURL(`/view?filename=${encodeURIComponent(ref.filename)}&type=${encodeURIComponent(ref.type || "input")}&subfolder=${encodeURIComponent(ref.subfolder || "")}`);
        }
        this.ed.render();
        if (save) this.ed.saveView();
    }

    async upload(file) {
        try {
            const body = new FormData();
            body.append("image", file);
            const resp = await this.ed.host.api.fetchApi("/upload/image", { method: "POST", body });
            if (resp.status !== 200) throw new Error(`${resp.status}`);
            const d = await resp.json();
            this.set({ filename: d.name, subfolder: d.subfolder || "", type: d.type || "input" }, true);
        } catch (exc) {
            // Not uploaded (e.g. no server): show it anyway; it is not kept in the workflow.
            const reader = new FileReader();
            reader.onload = () => this.set({ dataUrl: reader.result }, true);
            reader.readAsDataURL(file);
        }
    }

    /** The Load Image node whose image goes into a node that also takes this layout, else the first one. */
    loadImageNode() {
        const node = this.ed.node, graph = node.graph || this.ed.host.app.graph;
        const nodes = graph?._nodes || graph?.nodes || [];
        const loaders = nodes.filter((n) => n.type === "LoadImage" || n.comfyClass === "LoadImage");
        const linkOf = (id) => (graph.links?.get ? graph.links.get(id) : graph.links?.[id]);
        const consumers = new Set();
        for (const out of node.outputs || []) for (const id of out.links || []) { const l = linkOf(id); if (l) consumers.add(l.target_id); }
        const feeds = (n) => (n.outputs || []).some((o) => (o.links || []).some((id) => consumers.has(linkOf(id)?.target_id)));
        return loaders.find(feeds) || loaders[0];
    }

    fromLoadImage() {
        const value = this.loadImageNode()?.widgets?.find((w) => w.name === "image")?.value;
        if (!value) { this.ed.document.warn("no Load Image node with an image in the graph"); return; }
        const m = String(value).replace(VIEW_TYPE, "");
        const type = (String(value).match(VIEW_TYPE) || [, "input"])[1];
        const cut = m.lastIndexOf("/");
        this.ed.document.clearWarning();
        this.set({ filename: cut >= 0 ? m.slice(cut + 1) : m, subfolder: cut >= 0 ? m.slice(0, cut) : "", type }, true);
    }

    /** Set width/height to the reference image's size, rounded to a multiple of 8. */
    useSize() {
        if (!this.refImg) { this.ed.document.warn("no reference image"); return; }
        const r8 = (v) => clamp(Math.round(v / 8) * 8, 64, MAX_SIDE);
        const doc = this.ed.document;
        for (const [name, v] of [["width", r8(this.refImg.naturalWidth)], ["height", r8(this.refImg.naturalHeight)]]) {
            const w = doc.w(name);
            if (w) { w.value = v; w.callback?.(v); }
        }
        doc.sync();
        doc.commit();
    }
}
