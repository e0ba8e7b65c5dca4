// Layout editor drawing: paints the document, the shape in progress and the brush cursor on the canvas.
// Methods mixed into LayoutEditor (view.js); no side effects on import.
import { clamp, hasMask, PALETTE } from "./document.js";

export const paintMethods = {
    maskCanvas(inst) {
        const W = this.doc.width, H = this.doc.height;
        if (!inst._mcv || inst._mcv.width !== W || inst._mcv.height !== H) { inst._mcv = Object.assign(document.createElement("canvas"), { width: W, height: H }); inst._mdirty = true; }
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
    },

    render() {
        if (this._raf) return;
        this._raf = requestAnimationFrame(() => { this._raf = 0; this.paint(); });
    },

    paint() {
        const W = this.doc.width, H = this.doc.height;
        const sw = this.stage.clientWidth, sh = this.stage.clientHeight;
        if (sw < 4 || sh < 4) return;
        const k = Math.min(sw / W, sh / H);
        const cw = Math.max(1, Math.floor(W * k)), ch = Math.max(1, Math.floor(H * k));
        const fitKey = `${W}x${H} ${sw} ${this.list.offsetHeight}`;
        if (!this.popped && cw < sw - 2 && fitKey !== this._fitKey) {
            // the stage is too short for a full-width canvas (e.g. a workflow saved smaller): let the node grow, once
            this._fitKey = fitKey;
            requestAnimationFrame(() => this.fitNode());
        }
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
        if (this.grid > 0 && this.grid / px >= 6) {
            // the snap grid, when its cells are at least 6 screen pixels
            ctx.strokeStyle = "rgba(255,255,255,0.08)"; ctx.lineWidth = px;
            ctx.beginPath();
            for (let x = this.grid; x < W; x += this.grid) { ctx.moveTo(x, 0); ctx.lineTo(x, H); }
            for (let y = this.grid; y < H; y += this.grid) { ctx.moveTo(0, y); ctx.lineTo(W, y); }
            ctx.stroke();
        }
        ctx.lineJoin = ctx.lineCap = "round";
        const font = `${Math.round(11 * px * 10) / 10}px sans-serif`;
        this.doc.instances.forEach((inst, i) => {
            if (inst.hidden) return;
            const col = inst.color || PALETTE[i % PALETTE.length];
            const selected = i === this.sel;
            let anchor = null;
            ctx.setLineDash(inst.stale ? [4 * px, 3 * px] : []);   // seeded, shown as of the last run
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
        ctx.setLineDash([]);
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
    },
};
