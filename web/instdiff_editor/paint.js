// Layout editor drawing: paints the reference image, the snap grid, every instance (each kind by its entry in
// kinds.js), the drag and tool in progress and the brush cursor on the view's canvas. Owns the frame request and the
// node-fit key; reads the document, tools, reference and view through the editor (ed). No side effects on import.
import { PALETTE } from "./constants.js";
import { clamp } from "./geometry.js";
import { LABEL_ORDER, PAINT_ORDER } from "./kinds.js";

export class Painter {
    constructor(ed) {
        this.ed = ed;
        this.raf = 0;           // the requested animation frame
        this.fitKey = null;     // the size for which the node was last asked to grow
    }

    render() {
        if (this.raf) return;
        this.raf = requestAnimationFrame(() => { this.raf = 0; this.paint(); });
    }

    paint() {
        const look = this.frame();
        if (!look) return;
        this.background(look);
        this.ed.document.doc.instances.forEach((inst, i) => this.instance(look, inst, i));
        this.inProgress(look);
        this.ed.view.brushLabel.textContent = `${this.ed.tools.brushRadius()}px`;
    }

    /** Size the canvas to the stage at the layout's aspect; what every drawing step needs, or null (no room). */
    frame() {
        const { stage, canvas: c, list } = this.ed.view, { width: W, height: H } = this.ed.document.doc;
        const sw = stage.clientWidth, sh = stage.clientHeight;
        if (sw < 4 || sh < 4) return null;
        const k = Math.min(sw / W, sh / H);
        const cw = Math.max(1, Math.floor(W * k)), ch = Math.max(1, Math.floor(H * k));
        const fitKey = `${W}x${H} ${sw} ${list.offsetHeight}`;
        if (!this.ed.view.popped && cw < sw - 2 && fitKey !== this.fitKey) {
            // the stage is too short for a full-width canvas (e.g. a workflow saved smaller): let the node grow, once
            this.fitKey = fitKey;
            requestAnimationFrame(() => this.ed.fitNode());
        }
        const dpr = window.devicePixelRatio || 1;
        if (c.style.width !== `${cw}px` || c.style.height !== `${ch}px`) { c.style.width = `${cw}px`; c.style.height = `${ch}px`; }
        const bw = Math.max(1, Math.round(cw * dpr)), bh = Math.max(1, Math.round(ch * dpr));
        if (c.width !== bw || c.height !== bh) { c.width = bw; c.height = bh; }
        const s = bw / W;       // backing pixels per image pixel
        return { ctx: c.getContext("2d"), W, H, s, bw, bh, px: dpr / s };   // px: one CSS pixel, in image pixels
    }

    background({ ctx, W, H, s, bw, bh, px }) {
        const grid = this.ed.tools.grid, refImg = this.ed.reference.refImg;
        ctx.setTransform(1, 0, 0, 1, 0, 0);
        ctx.fillStyle = "#303030";
        ctx.fillRect(0, 0, bw, bh);
        ctx.setTransform(s, 0, 0, s, 0, 0);
        if (refImg) ctx.drawImage(refImg, 0, 0, W, H);
        if (grid > 0 && grid / px >= 6) {
            // the snap grid, when its cells are at least 6 screen pixels
            ctx.strokeStyle = "rgba(255,255,255,0.08)"; ctx.lineWidth = px;
            ctx.beginPath();
            for (let x = grid; x < W; x += grid) { ctx.moveTo(x, 0); ctx.lineTo(x, H); }
            for (let y = grid; y < H; y += grid) { ctx.moveTo(0, y); ctx.lineTo(W, y); }
            ctx.stroke();
        }
        ctx.lineJoin = ctx.lineCap = "round";
    }

    /** One instance: its kinds in PAINT_ORDER, then its label at the anchor of the first kind in LABEL_ORDER. */
    instance(base, inst, i) {
        if (inst.hidden) return;
        const { ctx, W, H, px } = base;
        const look = { ...base, col: inst.color || PALETTE[i % PALETTE.length], selected: i === this.ed.document.sel };
        ctx.setLineDash(inst.stale ? [4 * px, 3 * px] : []);   // seeded, shown as of the last run
        ctx.strokeStyle = look.col;
        ctx.fillStyle = look.col;
        for (const kind of PAINT_ORDER) if (inst[kind.key]) kind.draw(ctx, inst, look);
        let anchor = null;
        for (const kind of LABEL_ORDER) if (!anchor && inst[kind.key]) anchor = kind.anchor(inst, px, W, H);
        if (anchor) this.label(look, `${i}: ${inst.caption || "(no caption)"}`, anchor);
    }

    label({ ctx, W, H, px, col }, text, anchor) {
        ctx.font = `${Math.round(11 * px * 10) / 10}px sans-serif`;
        const tw = ctx.measureText(text).width;
        const tx = clamp(anchor[0] + 2 * px, 0, Math.max(0, W - tw - 4 * px)), ty = clamp(anchor[1] + 2 * px, 0, Math.max(0, H - 14 * px));
        ctx.fillStyle = "rgba(0,0,0,0.7)"; ctx.fillRect(tx, ty, tw + 4 * px, 14 * px);
        ctx.fillStyle = col; ctx.textBaseline = "top"; ctx.fillText(text, tx + 2 * px, ty + 2 * px);
    }

    /** The shape being dragged out and the current tool's own marks (polygon in progress, brush cursor). */
    inProgress(look) {
        const tools = this.ed.tools, doc = this.ed.document;
        look.ctx.setLineDash([]);
        look.selColor = doc.doc.instances[doc.sel]?.color || "#ffffff";
        tools.drag?.paint?.(look.ctx, look);
        tools.current.paint?.(look.ctx, look, tools);
    }
}
