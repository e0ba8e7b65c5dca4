// Layout editor tools: the Select tool and every kind's drawing tools (kinds.js), the pointer and the keys. Owns the
// current tool, brush size, snap grid, the drag in progress and the hover position; the document and the canvas
// belong to the editor's document and view (ed.document, ed.view). No side effects on import.
import { clamp, snap } from "./geometry.js";
import { COVER_ORDER, GRAB_ORDER, HANDLE_KINDS, KINDS } from "./kinds.js";

/** Select an instance; its box (move, corners) or point moves with the drag. */
const selectTool = () => ({
    id: "select", label: "Select", key: "v", cursor: "default",
    title: "Select an instance; drag a box or its corners to move/resize it, drag a point to move it (V)",
    press(t, p) {
        const hit = t.hitTest(p);
        if (hit) return t.pick(hit, p);
        t.select(-1);
        return null;
    },
});

export class Tools {
    constructor(ed) {
        this.ed = ed;
        this.list = [selectTool, ...KINDS.flatMap((kind) => kind.tools)].map((make) => make());
        this.current = null;
        this.brush = 0;         // image pixels; 0 = automatic (1/20 of the short side)
        this.grid = 0;          // snap grid in image pixels; 0 = off
        this.drag = null;       // what the pointer press in progress does: {move(t, p), end?(t), paint?(ctx, look)}
        this.hover = null;      // image-space pointer position
    }

    get doc() { return this.ed.document.doc; }

    size() { return [this.doc.width, this.doc.height]; }

    setTool(id) {
        const next = this.list.find((t) => t.id === id);
        if (this.current && this.current !== next) this.current.finish?.(this);
        this.current = next;
        this.ed.view.showTool(next);
        this.render();
    }

    /** Close what the current tool has in progress (a polygon being drawn), keeping it. */
    finishPending() { if (this.current?.pending?.()) this.current.finish(this); }

    /** Drop what the current tool has in progress. */
    cancelPending() { if (this.current?.pending?.()) this.current.cancel(this); }

    // ---------------- what the tools use
    brushRadius() {
        return this.brush > 0 ? this.brush : Math.max(2, Math.round(Math.min(this.doc.width, this.doc.height) / 20));
    }

    /** Pointer event -> image pixels (clamped to the image). */
    toImage(e) {
        const r = this.ed.view.canvas.getBoundingClientRect();
        const x = (e.clientX - r.left) / Math.max(1, r.width) * this.doc.width;
        const y = (e.clientY - r.top) / Math.max(1, r.height) * this.doc.height;
        return [clamp(x, 0, this.doc.width), clamp(y, 0, this.doc.height)];
    }

    /** Image pixels per CSS pixel on screen (zoom-independent hit tolerance). */
    pxScale() {
        return this.doc.width / Math.max(1, this.ed.view.canvas.getBoundingClientRect().width);
    }

    /** A point on the snap grid (when snapping is on), else rounded to whole pixels. */
    snapped(p) {
        return [clamp(snap(p[0], this.grid), 0, this.doc.width), clamp(snap(p[1], this.grid), 0, this.doc.height)];
    }

    target(needFree) { return this.ed.document.target(needFree); }

    write() { this.ed.document.write(); }

    commit() { this.ed.document.commit(); }

    render() { this.ed.render(); }

    select(i) { this.ed.document.select(i); }

    setBrush(px) { this.brush = px; this.render(); }

    setGrid(px) { this.grid = px; this.render(); }

    /** Select the hit instance; the drag that moves what was hit (null when it does not move). */
    pick(hit, p) {
        this.select(hit.i);
        return hit.kind.dragFrom?.(this.doc.instances[hit.i], hit.handle, p) || null;
    }

    /**
     * What a press at p hits: {i, kind, handle, onHandle}. The selected instance's handles first (onHandle), then
     * the markers of every instance (top-most first: points, box corners), then the areas it falls in.
     */
    hitTest(p) {
        const tol = 7 * this.pxScale(), [W, H] = this.size(), sel = this.ed.document.sel;
        const order = [...this.doc.instances.keys()].reverse();
        const first = (indices, kinds, test) => {
            for (const i of indices) {
                const inst = this.doc.instances[i];
                if (!inst || inst.hidden) continue;
                for (const kind of kinds) {
                    const handle = inst[kind.key] && test(kind, inst);
                    if (handle) return { i, kind, handle };
                }
            }
            return null;
        };
        const own = first([sel], HANDLE_KINDS, (kind, inst) => kind.handle(inst, p, tol));
        return own ? { ...own, onHandle: true }
            : first(order, GRAB_ORDER, (kind, inst) => kind.grab(inst, p, tol)) ||
              first(order, COVER_ORDER, (kind, inst) => kind.covers(inst, p, tol, W, H));
    }

    // ---------------- pointer and keys
    onDown(e) {
        if (e.button !== 0) return;
        e.preventDefault();
        e.stopPropagation();
        this.ed.view.keys.focus({ preventScroll: true });
        this.ed.view.canvas.setPointerCapture?.(e.pointerId);
        this.drag = this.current.press(this, this.toImage(e));
        this.render();
    }

    onMove(e) {
        const p = this.toImage(e);
        this.hover = p;
        if (this.drag) {
            e.preventDefault();
            e.stopPropagation();
            this.drag.move(this, p);
        }
        this.render();
    }

    onUp(e) {
        const d = this.drag;
        if (!d) return;
        e.stopPropagation();
        this.drag = null;
        this.ed.view.canvas.releasePointerCapture?.(e.pointerId);
        d.end?.(this);
        this.commit();
        this.render();
    }

    onLeave() { this.hover = null; this.render(); }

    onDoubleClick(e) { e.preventDefault(); this.current.finish?.(this); }

    /** Keys anywhere in the editor except its text fields: tools, undo/redo, Delete, Enter/Esc. */
    onKey(e) {
        const k = e.key, mod = e.ctrlKey || e.metaKey, doc = this.ed.document;
        if (e.target !== this.ed.view.keys && e.target?.tagName === "INPUT" && e.target.type === "text") {
            if (k === "Escape") e.target.blur();
            return;
        }
        const tool = !mod && !e.altKey && this.list.find((t) => t.key === k.toLowerCase());
        const pending = this.current.pending?.();
        const act = (fn) => { e.preventDefault(); fn(); };
        if (k === "Enter" && pending) act(() => this.current.finish(this));
        else if (k === "Escape" && pending) act(() => this.current.cancel(this));
        else if (k === "Escape" && this.ed.view.popped) act(() => this.ed.view.popIn());
        else if (mod && k.toLowerCase() === "z") act(() => (e.shiftKey ? doc.redo() : doc.undo()));
        else if (mod && k.toLowerCase() === "y") act(() => doc.redo());
        else if ((k === "Delete" || k === "Backspace") && doc.sel >= 0) act(() => doc.remove(doc.sel));
        else if (tool) act(() => this.setTool(tool.id));
    }
}
