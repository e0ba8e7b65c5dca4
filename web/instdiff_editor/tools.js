// Layout editor tools: pointer drawing (box, point, scribble, polygon, mask brush/eraser, select) and keys.
// Methods mixed into LayoutEditor (view.js); no side effects on import.
import { boxHandle, clamp, editBox, hasMask, inPolygon, snap } from "./document.js";

// [id, label, key, title]
export const TOOLS = [
    ["select", "Select", "v", "Select an instance; drag a box or its corners to move/resize it, drag a point to move it (V)"],
    ["box", "Box", "b", "Drag to draw a box (adds a new instance if the selected one already has a box) (B)"],
    ["point", "Point", "p", "Click to place a point (adds a new instance if the selected one already has a point) (P)"],
    ["scribble", "Scribble", "s", "Drag to draw a freehand stroke on the selected instance (S)"],
    ["polygon", "Polygon", "g", "Click vertices; close by clicking the first vertex, double-clicking or pressing Enter (Esc cancels) (G)"],
    ["brush", "Mask", "m", "Paint the selected instance's mask (M)"],
    ["eraser", "Erase", "e", "Erase from the selected instance's mask (E)"],
];

export const toolMethods = {
    brushRadius() {
        return this.brush > 0 ? this.brush : Math.max(2, Math.round(Math.min(this.doc.width, this.doc.height) / 20));
    },

    /** Pointer event -> image pixels (clamped to the image). */
    toImage(e) {
        const r = this.canvas.getBoundingClientRect();
        const x = (e.clientX - r.left) / Math.max(1, r.width) * this.doc.width;
        const y = (e.clientY - r.top) / Math.max(1, r.height) * this.doc.height;
        return [clamp(x, 0, this.doc.width), clamp(y, 0, this.doc.height)];
    },

    /** Image pixels per CSS pixel on screen (zoom-independent hit tolerance). */
    pxScale() {
        return this.doc.width / Math.max(1, this.canvas.getBoundingClientRect().width);
    },

    /** A point on the snap grid (when snapping is on), else rounded to whole pixels. */
    snapped(p) {
        return [clamp(snap(p[0], this.grid), 0, this.doc.width), clamp(snap(p[1], this.grid), 0, this.doc.height)];
    },

    hitTest(p) {
        const tol = 7 * this.pxScale();
        const order = [...this.doc.instances.keys()].reverse();
        const sel = this.doc.instances[this.sel];
        if (sel && !sel.hidden && sel.box) {
            const h = boxHandle(sel.box, p, tol);
            if (h) return { i: this.sel, what: "box", handle: h };
        }
        for (const i of order) {
            const inst = this.doc.instances[i];
            if (inst.hidden) continue;
            if (inst.point && Math.hypot(inst.point[0] - p[0], inst.point[1] - p[1]) <= tol * 1.3) return { i, what: "point" };
            if (inst.box) {
                const h = boxHandle(inst.box, p, tol);
                if (h) return { i, what: "box", handle: h };
            }
        }
        const W = this.doc.width, H = this.doc.height;
        for (const i of order) {
            const inst = this.doc.instances[i];
            if (inst.hidden) continue;
            const [x, y, w, h] = inst.box || [0, 0, -1, -1];
            if (p[0] >= x && p[0] <= x + w && p[1] >= y && p[1] <= y + h) return { i, what: "box", handle: "move" };
            if (inst.mask && inst.mask[Math.min(H - 1, Math.floor(p[1])) * W + Math.min(W - 1, Math.floor(p[0]))]) return { i, what: "select" };
            if ((inst.polygon || []).some((ring) => inPolygon(p, ring))) return { i, what: "select" };
            if ((inst.scribble || []).some((s) => s.some((q) => Math.hypot(q[0] - p[0], q[1] - p[1]) <= tol))) return { i, what: "select" };
        }
        return null;
    },

    onDown(e) {
        if (e.button !== 0) return;
        e.preventDefault();
        e.stopPropagation();
        this.keys.focus({ preventScroll: true });
        this.canvas.setPointerCapture?.(e.pointerId);
        const p = this.toImage(e);
        const W = this.doc.width, H = this.doc.height;
        const t = this.tool;
        if (t === "select" || t === "box") {
            const hit = this.hitTest(p);
            if (hit && (t === "select" || (hit.what === "box" && hit.i === this.sel && hit.handle !== "move"))) {
                this.sel = hit.i;
                this.markSelection();
                const inst = this.doc.instances[hit.i];
                if (hit.what === "box") this.drag = { kind: "box-edit", inst, handle: hit.handle, start: p, orig: inst.box.slice() };
                else if (hit.what === "point") this.drag = { kind: "point-move", inst };
                this.render();
                return;
            }
            if (t === "select") { this.sel = -1; this.markSelection(); this.render(); return; }
            this.drag = { kind: "box-new", start: this.snapped(p), cur: this.snapped(p) };
        } else if (t === "point") {
            const inst = this.target((i) => !!i.point);
            if (!inst) return;
            inst.point = this.snapped(p);
            this.drag = { kind: "point-move", inst };
            this.write();
        } else if (t === "scribble") {
            const inst = this.target(null);
            if (!inst) return;
            const stroke = [[Math.round(p[0]), Math.round(p[1])]];
            inst.scribble = (inst.scribble || []).concat([stroke]);
            this.drag = { kind: "scribble", inst, stroke };
        } else if (t === "polygon") {
            const q = this.snapped(p);
            if (this.poly && this.poly.length >= 3) {
                const f = this.poly[0];
                if (Math.hypot(f[0] - q[0], f[1] - q[1]) <= Math.max(8 * this.pxScale(), this.grid / 2)) { this.closePolygon(); return; }
            }
            if (!this.poly) this.poly = [];
            const last = this.poly[this.poly.length - 1];
            if (!last || last[0] !== q[0] || last[1] !== q[1]) this.poly.push(q);
        } else if (t === "brush" || t === "eraser") {
            const inst = this.target(null);
            if (!inst) return;
            if (!inst.mask || inst.mask.length !== W * H) inst.mask = new Uint8Array(W * H);
            this.drag = { kind: "paint", inst, last: p, value: t === "brush" ? 1 : 0 };
            this.stamp(inst, p, p, this.drag.value);
        }
        this.render();
    },

    onMove(e) {
        const p = this.toImage(e);
        this.hover = p;
        const d = this.drag;
        if (d) {
            e.preventDefault();
            e.stopPropagation();
            const W = this.doc.width, H = this.doc.height;
            if (d.kind === "box-new") d.cur = this.snapped(p);
            else if (d.kind === "box-edit") d.inst.box = editBox(d.orig, d.handle, p[0] - d.start[0], p[1] - d.start[1], W, H, this.grid);
            else if (d.kind === "point-move") d.inst.point = this.snapped(p);
            else if (d.kind === "scribble") {
                const q = [Math.round(p[0]), Math.round(p[1])], last = d.stroke[d.stroke.length - 1];
                if (Math.hypot(q[0] - last[0], q[1] - last[1]) >= Math.max(1, 2 * this.pxScale())) d.stroke.push(q);
            } else if (d.kind === "paint") { this.stamp(d.inst, d.last, p, d.value); d.last = p; }
        }
        this.render();
    },

    onUp(e) {
        const d = this.drag;
        if (!d) return;
        e.stopPropagation();
        this.drag = null;
        this.canvas.releasePointerCapture?.(e.pointerId);
        if (d.kind === "box-new") {
            const [x0, y0] = d.start, [x1, y1] = d.cur;
            const x = Math.round(Math.min(x0, x1)), y = Math.round(Math.min(y0, y1));
            const w = Math.round(Math.max(x0, x1)) - x, h = Math.round(Math.max(y0, y1)) - y;
            if (w >= 2 && h >= 2) {
                const inst = this.target((i) => !!i.box);
                if (inst) inst.box = [x, y, w, h];
            }
        } else if (d.kind === "paint" && !hasMask(d.inst)) {
            d.inst.mask = null;
        }
        this.commit();
        this.render();
    },

    /** Keys anywhere in the editor except its text fields: tools, undo/redo, Delete, Enter/Esc. */
    onKey(e) {
        const k = e.key, mod = e.ctrlKey || e.metaKey;
        if (e.target !== this.keys && e.target?.tagName === "INPUT" && e.target.type === "text") {
            if (k === "Escape") e.target.blur();
            return;
        }
        const tool = !mod && !e.altKey && TOOLS.find((t) => t[2] === k.toLowerCase());
        if (k === "Enter" && this.poly) { e.preventDefault(); this.closePolygon(); }
        else if (k === "Escape" && this.poly) { e.preventDefault(); this.poly = null; this.render(); }
        else if (k === "Escape" && this.popped) { e.preventDefault(); this.popIn(); }
        else if (mod && k.toLowerCase() === "z") { e.preventDefault(); e.shiftKey ? this.redo() : this.undo(); }
        else if (mod && k.toLowerCase() === "y") { e.preventDefault(); this.redo(); }
        else if ((k === "Delete" || k === "Backspace") && this.sel >= 0) { e.preventDefault(); this.remove(this.sel); }
        else if (tool) { e.preventDefault(); this.setTool(tool[0]); }
    },

    closePolygon() {
        const ring = this.poly;
        this.poly = null;
        if (ring && ring.length >= 3) {
            const inst = this.target(null);
            if (inst) {
                inst.polygon = (inst.polygon || []).concat([ring]);
                this.commit();
            }
        }
        this.render();
    },

    /** Paint (value 1) or erase (0) a round brush along a segment, in image pixels. */
    stamp(inst, a, b, value) {
        const W = this.doc.width, H = this.doc.height, r = this.brushRadius();
        const n = Math.max(1, Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) / Math.max(1, r / 3)));
        const x0 = Math.max(0, Math.floor(Math.min(a[0], b[0]) - r)), x1 = Math.min(W - 1, Math.ceil(Math.max(a[0], b[0]) + r));
        const y0 = Math.max(0, Math.floor(Math.min(a[1], b[1]) - r)), y1 = Math.min(H - 1, Math.ceil(Math.max(a[1], b[1]) + r));
        const m = inst.mask, r2 = r * r;
        for (let s = 0; s <= n; s++) {
            const cx = a[0] + (b[0] - a[0]) * s / n, cy = a[1] + (b[1] - a[1]) * s / n;
            const ya = Math.max(y0, Math.floor(cy - r)), yb = Math.min(y1, Math.ceil(cy + r));
            const xa = Math.max(x0, Math.floor(cx - r)), xb = Math.min(x1, Math.ceil(cx + r));
            for (let y = ya; y <= yb; y++) {
                const dy = y + 0.5 - cy;
                for (let x = xa; x <= xb; x++) {
                    const dx = x + 0.5 - cx;
                    if (dx * dx + dy * dy <= r2) m[y * W + x] = value;
                }
            }
        }
        inst._rle = null;
        inst._mdirty = true;
    },
};
