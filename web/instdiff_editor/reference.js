// Layout editor reference image: an image under the drawing (uploaded, or a Load Image node's), and its size.
// Methods mixed into LayoutEditor (view.js); the host's api/app come in through `this.host`. No side effects on import.
import { clamp } from "./document.js";

export const referenceMethods = {
    setRef(ref, save) {
        this.ref = ref;
        this.refImg = null;
        if (ref) {
            const img = new Image();
            img.onload = () => { if (this.ref === ref) { this.refImg = img; this.render(); } };
            img.onerror = () => { if (this.ref === ref) { this.error = "reference image could not be loaded"; this.refreshStatus(); } };
            img.src = ref.dataUrl || this.host.api.apiURL(`/view?filename=${encodeURIComponent(ref.filename)}&type=${encodeURIComponent(ref.type || "input")}&subfolder=${encodeURIComponent(ref.subfolder || "")}`);
        }
        this.render();
        if (save) this.saveView();
    },

    async uploadRef(file) {
        try {
            const body = new FormData();
            body.append("image", file);
            const resp = await this.host.api.fetchApi("/upload/image", { method: "POST", body });
            if (resp.status !== 200) throw new Error(`${resp.status}`);
            const d = await resp.json();
            this.setRef({ filename: d.name, subfolder: d.subfolder || "", type: d.type || "input" }, true);
        } catch (exc) {
            // Not uploaded (e.g. no server): show it anyway; it is not kept in the workflow.
            const reader = new FileReader();
            reader.onload = () => this.setRef({ dataUrl: reader.result }, true);
            reader.readAsDataURL(file);
        }
    },

    refFromLoadImage() {
        const graph = this.node.graph || this.host.app.graph;
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
    },

    useRefSize() {
        if (!this.refImg) { this.error = "no reference image"; this.refreshStatus(); return; }
        const r8 = (v) => clamp(Math.round(v / 8) * 8, 64, 8192);
        for (const [name, v] of [["width", r8(this.refImg.naturalWidth)], ["height", r8(this.refImg.naturalHeight)]]) {
            const w = this.w(name);
            if (w) { w.value = v; w.callback?.(v); }
        }
        this.sync();
        this.commit();
    },

};
