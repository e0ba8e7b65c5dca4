// Layout editor geometry in image pixels: clamping, the snap grid, box handles and edits, point in polygon, and the
// backend's nearest-neighbour mask resize (instdiff_model/geometry.py). Pure module, no side effects on import.

export const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
export const r1 = (v) => Math.round(v * 10) / 10;
export const snap = (v, grid) => (grid > 0 ? Math.round(v / grid) * grid : Math.round(v));
export const dist = (a, b) => Math.hypot(a[0] - b[0], a[1] - b[1]);

/** The corner of `box` within `tol` of `p` ("nw", "ne", "sw", "se"), or null. */
export function boxHandle(box, p, tol) {
    const [x, y, w, h] = box;
    const near = (a, b) => Math.abs(a - b) <= tol;
    const corners = { nw: [x, y], ne: [x + w, y], sw: [x, y + h], se: [x + w, y + h] };
    for (const [name, [cx, cy]] of Object.entries(corners)) if (near(p[0], cx) && near(p[1], cy)) return name;
    return null;
}

/** A box moved ("move") or resized by a corner handle by (dx, dy), kept inside W x H, corners on the grid. */
export function editBox(orig, handle, dx, dy, W, H, grid = 0) {
    const [x, y, w, h] = orig;
    if (handle === "move") return [clamp(snap(x + dx, grid), 0, W - w), clamp(snap(y + dy, grid), 0, H - h), w, h];
    let x0 = x, y0 = y, x1 = x + w, y1 = y + h;
    if (handle.includes("w")) x0 = x + dx; else x1 = x + w + dx;
    if (handle.includes("n")) y0 = y + dy; else y1 = y + h + dy;
    x0 = clamp(snap(x0, grid), 0, W); x1 = clamp(snap(x1, grid), 0, W);
    y0 = clamp(snap(y0, grid), 0, H); y1 = clamp(snap(y1, grid), 0, H);
    return [Math.min(x0, x1), Math.min(y0, y1), Math.max(1, Math.abs(x1 - x0)), Math.max(1, Math.abs(y1 - y0))];
}

export function inPolygon(p, ring) {
    let inside = false;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
        const [xi, yi] = ring[i], [xj, yj] = ring[j];
        if ((yi > p[1]) !== (yj > p[1]) && p[0] < (xj - xi) * (p[1] - yi) / (yj - yi) + xi) inside = !inside;
    }
    return inside;
}

/** Nearest-neighbour mask resize by the backend's rule (instdiff_model/geometry.resize_nearest: pixel centres),
 * for size changes while drawing; tests/test_editor_document.py checks the two agree. */
export function resampleMask(src, sw, sh, w, h) {
    const out = new Uint8Array(w * h);
    if (!sw || !sh) return out;
    for (let y = 0; y < h; y++) {
        const sy = Math.min(sh - 1, Math.floor((y + 0.5) * sh / h));
        for (let x = 0; x < w; x++) out[y * w + x] = src[sy * sw + Math.min(sw - 1, Math.floor((x + 0.5) * sw / w))];
    }
    return out;
}
