// The location kinds of an instance (box, point, scribble, polygon, mask), one entry each, as in
// instdiff_model/locations.py: JSON key and list letter, reading and writing layout JSON, scaling, drawing, the label
// anchor, hit tests and the drawing tools. The document, the painter and the pointer handling loop over this table;
// a new kind is one entry here (and its class in locations.py). Pure but for drawing (canvas calls); no side effects.
import { KIND_KEYS, SHAPE_ORDER } from "./constants.js";
import { boxHandle, clamp, dist, editBox, inPolygon, r1, resampleMask } from "./geometry.js";
import { rleDecode, rleEncode } from "./rle.js";

const xy = (p) => [Number(p[0]), Number(p[1])];
const nested = (v) => Array.isArray(v) && v.length > 0 && Array.isArray(v[0]) && v[0].length > 0 && Array.isArray(v[0][0]);
const scaler = (sx, sy, w, h) => (p) => [clamp(p[0] * sx, 0, w), clamp(p[1] * sy, 0, h)];

const fail = (message) => { throw new Error(message); };

function tracePath(ctx, pts) {
    ctx.beginPath();
    pts.forEach((p, j) => (j ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
}

// ---------------------------------------------------------------- drags (what a press starts; onUp ends it)

/** Move a point with the pointer. */
const pointDrag = (inst) => ({ move(t, p) { inst.point = t.snapped(p); } });

/** Move (handle "move") or resize (a corner) a box. */
const boxDrag = (inst, handle, start) => {
    const orig = inst.box.slice();
    return { move(t, p) { const [W, H] = t.size(); inst.box = editBox(orig, handle, p[0] - start[0], p[1] - start[1], W, H, t.grid); } };
};

/** A new box, dragged out from `start`; kept when at least 2 x 2 pixels. */
function newBoxDrag(t, start) {
    const d = { start: t.snapped(start), cur: t.snapped(start) };
    d.move = (t, p) => { d.cur = t.snapped(p); };
    d.end = (t) => {
        const [x0, y0] = d.start, [x1, y1] = d.cur;
        const x = Math.round(Math.min(x0, x1)), y = Math.round(Math.min(y0, y1));
        const w = Math.round(Math.max(x0, x1)) - x, h = Math.round(Math.max(y0, y1)) - y;
        const inst = w >= 2 && h >= 2 ? t.target((i) => !!i.box) : null;
        if (inst) inst.box = [x, y, w, h];
    };
    d.paint = (ctx, look) => {
        const { px } = look, [x0, y0] = d.start, [x1, y1] = d.cur;
        ctx.setLineDash([5 * px, 4 * px]); ctx.strokeStyle = "#fff"; ctx.lineWidth = 1.5 * px;
        ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
        ctx.setLineDash([]);
    };
    return d;
}

/** Paint (value 1) or erase (0) a round brush of radius r along a segment a-b of a W x H mask, in image pixels. */
export function stamp(inst, a, b, value, r, W, H) {
    const n = Math.max(1, Math.ceil(dist(b, a) / Math.max(1, r / 3)));
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
}

// ---------------------------------------------------------------- tools (one per kind; the mask has two)

const boxTool = () => ({
    id: "box", label: "Box", key: "b",
    title: "Drag to draw a box (adds a new instance if the selected one already has a box) (B)",
    press(t, p) {
        const hit = t.hitTest(p);
        return hit?.onHandle ? t.pick(hit, p) : newBoxDrag(t, p);   // the selected box's corner: resize it
    },
});

const pointTool = () => ({
    id: "point", label: "Point", key: "p",
    title: "Click to place a point (adds a new instance if the selected one already has a point) (P)",
    press(t, p) {
        const inst = t.target((i) => !!i.point);
        if (!inst) return null;
        inst.point = t.snapped(p);
        t.write();
        return pointDrag(inst);
    },
});

const scribbleTool = () => ({
    id: "scribble", label: "Scribble", key: "s", title: "Drag to draw a freehand stroke on the selected instance (S)",
    press(t, p) {
        const inst = t.target(null);
        if (!inst) return null;
        const stroke = [[Math.round(p[0]), Math.round(p[1])]];
        inst.scribble = (inst.scribble || []).concat([stroke]);
        return { move(t, p) {
            const q = [Math.round(p[0]), Math.round(p[1])];
            if (dist(q, stroke[stroke.length - 1]) >= Math.max(1, 2 * t.pxScale())) stroke.push(q);
        } };
    },
});

/** Click vertices; the ring is added when closed (first vertex, double click, Enter, another tool), Esc drops it. */
const polygonTool = () => ({
    id: "polygon", label: "Polygon", key: "g", ring: null,
    title: "Click vertices; close by clicking the first vertex, double-clicking or pressing Enter (Esc cancels) (G)",
    press(t, p) {
        const q = t.snapped(p), ring = this.ring;
        if (ring && ring.length >= 3 && dist(ring[0], q) <= Math.max(8 * t.pxScale(), t.grid / 2)) { this.finish(t); return null; }
        this.ring = ring || [];
        const last = this.ring[this.ring.length - 1];
        if (!last || last[0] !== q[0] || last[1] !== q[1]) this.ring.push(q);
        return null;
    },
    pending() { return !!this.ring; },
    finish(t) {
        const ring = this.ring;
        this.ring = null;
        const inst = ring && ring.length >= 3 ? t.target(null) : null;
        if (inst) { inst.polygon = (inst.polygon || []).concat([ring]); t.commit(); }
        t.render();
    },
    cancel(t) { this.ring = null; t.render(); },
    paint(ctx, look, t) {
        if (!this.ring) return;
        const { px } = look, col = look.selColor;
        ctx.strokeStyle = col; ctx.fillStyle = col; ctx.lineWidth = 2 * px;
        tracePath(ctx, this.ring);
        if (t.hover) ctx.lineTo(t.hover[0], t.hover[1]);
        ctx.stroke();
        this.ring.forEach((p, j) => { ctx.beginPath(); ctx.arc(p[0], p[1], (j ? 3 : 5) * px, 0, Math.PI * 2); ctx.fill(); });
    },
});

/** The mask brush (value 1) or eraser (0): paints the selected instance's mask along the drag. */
const maskTool = (id, label, key, value, title, cursor) => () => ({
    id, label, key, title,
    press(t, p) {
        const inst = t.target(null);
        if (!inst) return null;
        const [W, H] = t.size();
        if (!inst.mask || inst.mask.length !== W * H) inst.mask = new Uint8Array(W * H);
        let last = p;
        stamp(inst, p, p, value, t.brushRadius(), W, H);
        return {
            move(t, p) { stamp(inst, last, p, value, t.brushRadius(), ...t.size()); last = p; },
            end() { if (!MASK.has(inst)) inst.mask = null; },
        };
    },
    paint(ctx, look, t) {
        if (!t.hover) return;
        ctx.beginPath(); ctx.arc(t.hover[0], t.hover[1], t.brushRadius(), 0, Math.PI * 2);
        ctx.strokeStyle = cursor; ctx.lineWidth = 1 * look.px; ctx.stroke();
    },
});

// ---------------------------------------------------------------- the kinds

/** Lists of [x, y] points: scribble strokes, polygon rings. */
const lines = {
    read: (v) => (Array.isArray(v) && v.length ? (nested(v) ? v : [v]).map((s) => s.map(xy)) : null),
    has(inst) { return !!(inst[this.key] && inst[this.key].length); },
    toJson(inst) { return inst[this.key].map((s) => s.map((p) => [r1(p[0]), r1(p[1])])); },
    scale(inst, sx, sy, w, h) { inst[this.key] = inst[this.key].map((s) => s.map(scaler(sx, sy, w, h))); },
    anchor(inst) { return inst[this.key].find((s) => s[0])?.[0] || null; },
};

export const BOX = {
    key: "box", letter: "B", tools: [boxTool],
    read: (v) => (Array.isArray(v) && v.length === 4 ? v.map(Number) : null),
    has: (inst) => !!inst.box,
    toJson: (inst) => inst.box.map(r1),
    scale(inst, sx, sy, w, h) {
        const [x, y, bw, bh] = inst.box;
        const nx = clamp(Math.round(x * sx), 0, w - 1), ny = clamp(Math.round(y * sy), 0, h - 1);
        inst.box = [nx, ny, clamp(Math.round(bw * sx), 1, w - nx), clamp(Math.round(bh * sy), 1, h - ny)];
    },
    /** A box in the middle of a W x H image, a quarter of its size. */
    middle: (W, H) => [Math.round(W * 3 / 8), Math.round(H * 3 / 8), Math.max(1, Math.round(W / 4)), Math.max(1, Math.round(H / 4))],
    draw(ctx, inst, look) {
        const [x, y, w, h] = inst.box, { px, col } = look;
        ctx.lineWidth = (look.selected ? 3 : 2) * px;
        ctx.strokeRect(x, y, w, h);
        if (!look.selected) return;
        const hs = 4 * px;
        for (const [hx, hy] of [[x, y], [x + w, y], [x, y + h], [x + w, y + h]]) {
            ctx.fillStyle = "#fff"; ctx.fillRect(hx - hs, hy - hs, 2 * hs, 2 * hs);
            ctx.strokeRect(hx - hs, hy - hs, 2 * hs, 2 * hs);
        }
        ctx.fillStyle = col;
    },
    anchor: (inst) => [inst.box[0], inst.box[1]],
    handle: (inst, p, tol) => boxHandle(inst.box, p, tol),     // the corners the selected box shows
    grab: (inst, p, tol) => boxHandle(inst.box, p, tol),
    covers(inst, p) { const [x, y, w, h] = inst.box; return p[0] >= x && p[0] <= x + w && p[1] >= y && p[1] <= y + h ? "move" : null; },
    dragFrom: (inst, handle, p) => boxDrag(inst, handle, p),
};

export const POINT = {
    key: "point", letter: "P", tools: [pointTool],
    read: (v) => (Array.isArray(v) && v.length === 2 ? v.map(Number) : null),
    has: (inst) => !!inst.point,
    toJson: (inst) => inst.point.map(r1),
    scale(inst, sx, sy, w, h) { inst.point = scaler(sx, sy, w, h)(inst.point); },
    draw(ctx, inst, look) {
        const { px } = look;
        ctx.beginPath();
        ctx.arc(inst.point[0], inst.point[1], (look.selected ? 6 : 5) * px, 0, Math.PI * 2);
        ctx.fill();
        ctx.lineWidth = 1.5 * px; ctx.strokeStyle = "#fff"; ctx.stroke();
    },
    anchor: (inst, px) => [inst.point[0] + 6 * px, inst.point[1] - 6 * px],
    grab: (inst, p, tol) => (dist(inst.point, p) <= tol * 1.3 ? "point" : null),
    dragFrom: (inst) => pointDrag(inst),
};

export const SCRIBBLE = {
    ...lines, key: "scribble", letter: "S", tools: [scribbleTool],
    draw(ctx, inst, look) {
        for (const st of inst.scribble) {
            tracePath(ctx, st);
            if (st.length === 1) ctx.lineTo(st[0][0] + 0.01, st[0][1]);
            ctx.lineWidth = (look.selected ? 4 : 3) * look.px; ctx.stroke();
        }
    },
    covers: (inst, p, tol) => (inst.scribble.some((s) => s.some((q) => dist(q, p) <= tol)) ? "select" : null),
};

export const POLYGON = {
    ...lines, key: "polygon", letter: "G", tools: [polygonTool],
    draw(ctx, inst, look) {
        for (const ring of inst.polygon) {
            tracePath(ctx, ring);
            ctx.closePath();
            ctx.globalAlpha = 0.28; ctx.fill(); ctx.globalAlpha = 1;
            ctx.lineWidth = (look.selected ? 3 : 2) * look.px; ctx.stroke();
        }
    },
    covers: (inst, p) => (inst.polygon.some((ring) => inPolygon(p, ring)) ? "select" : null),
};

/** The mask's pixels as a canvas in its colour (kept on the instance until the mask or the size changes). */
function maskCanvas(inst, W, H) {
    if (!inst._mcv || inst._mcv.width !== W || inst._mcv.height !== H) {
        inst._mcv = Object.assign(document.createElement("canvas"), { width: W, height: H });
        inst._mdirty = true;
    }
    if (!inst._mdirty) return inst._mcv;
    const ctx = inst._mcv.getContext("2d");
    const img = ctx.createImageData(W, H);
    const c = inst.color || "#ffffff";
    const R = parseInt(c.slice(1, 3), 16), G = parseInt(c.slice(3, 5), 16), B = parseInt(c.slice(5, 7), 16);
    const m = inst.mask, d = img.data;
    for (let i = 0, j = 0; i < m.length; i++, j += 4) if (m[i]) { d[j] = R; d[j + 1] = G; d[j + 2] = B; d[j + 3] = 255; }
    ctx.putImageData(img, 0, 0);
    inst._mdirty = false;
    return inst._mcv;
}

const pixel = (inst, p, W, H) => inst.mask[Math.min(H - 1, Math.floor(p[1])) * W + Math.min(W - 1, Math.floor(p[0]))];

export const MASK = {
    key: "mask", letter: "M",
    tools: [maskTool("brush", "Mask", "m", 1, "Paint the selected instance's mask (M)", "#fff"),
            maskTool("eraser", "Erase", "e", 0, "Erase from the selected instance's mask (E)", "#f66")],
    read: (v, w, h) => (v ? rleDecode(v, w, h) : null),
    has(inst) {
        if (!inst.mask) return false;
        for (let i = 0; i < inst.mask.length; i++) if (inst.mask[i]) return true;
        return false;
    },
    toJson: (inst, w, h) => inst._rle || (inst._rle = rleEncode(inst.mask, w, h)),
    scale(inst, sx, sy, w, h, sw, sh) {
        inst.mask = resampleMask(inst.mask, sw, sh, w, h);
        inst._rle = null; inst._mdirty = true; inst._mcv = null;
    },
    draw(ctx, inst, look) {
        ctx.globalAlpha = 0.45;
        ctx.imageSmoothingEnabled = false;
        ctx.drawImage(maskCanvas(inst, look.W, look.H), 0, 0, look.W, look.H);
        ctx.globalAlpha = 1;
    },
    /** Its first pixel, row by row. */
    anchor(inst, px, W, H) {
        if (!MASK.has(inst)) return null;
        const m = inst.mask;
        for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if (m[y * W + x]) return [x, y];
        return null;
    },
    covers: (inst, p, tol, W, H) => (pixel(inst, p, W, H) ? "select" : null),
};

const byKey = (keys) => keys.map((k) => [BOX, POINT, SCRIBBLE, POLYGON, MASK].find((kind) => kind.key === k) ||
    fail(`kinds.js has no entry for the location kind "${k}" of constants.js (instdiff_model/locations.py)`));
/** In locations.KINDS order (the JSON order, from constants.js); tests/test_editor_code.py checks every key has an entry. */
export const KINDS = byKey(KIND_KEYS);
// Drawing order (what is on top): masks under areas under lines, boxes and points on top.
export const PAINT_ORDER = [MASK, POLYGON, SCRIBBLE, BOX, POINT];
// Label anchor: locations.SHAPE_ORDER with the mask last (Python anchors a mask by its extent, as a fallback).
export const LABEL_ORDER = byKey(SHAPE_ORDER.filter((k) => k !== "mask").concat(["mask"]));
// Hit tests: the selected instance's handles, then the markers a press grabs (top-most instance first), then the
// areas it falls in.
export const HANDLE_KINDS = KINDS.filter((kind) => kind.handle);
export const GRAB_ORDER = [POINT, BOX];
export const COVER_ORDER = byKey(SHAPE_ORDER).filter((kind) => kind.covers);
export const CHOICES = "a " + KIND_KEYS.slice(0, -1).join(", ") + " or " + KIND_KEYS[KIND_KEYS.length - 1];

/** The kinds an instance has, as list letters ("B·S··"). */
export const letters = (inst) => KINDS.map((kind) => (kind.has(inst) ? kind.letter : "·")).join("");
