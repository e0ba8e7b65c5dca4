// The layout editor's document: layout JSON <-> instances, COCO RLE masks, scaling, geometry, undo history.
// Pure module (no DOM, no host app): unit-tested with `node --test tests/web`. Loaded by the host as an
// extension too (every .js under web/ is), so it must have no side effects on import.
//
// Seeded instances come from the backend: the Layout node merges its seed_layout input with the user's records
// and returns the merged layout, each instance with its "origin" ("seed", "edited" or "user"); fromBackend()
// turns that into a document as is. The editor never merges or scales seeds itself. It stores in layout_json only
// what the user made or changed ("seed": k on an edit of seed instance k, "seed_removed" for deleted ones).

export const SCHEMA = "instdiff.layout";
export const VERSION = 1;
export const MAX_INSTANCES = 30;
// Same palette as the Layout Preview node, so colours match between editor and preview.
export const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
    "#fabed4", "#469990", "#dcbeff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000", "#ffd8b1", "#000075",
    "#a9a9a9", "#ffe119"];
export const KINDS = [["box", "B"], ["point", "P"], ["scribble", "S"], ["polygon", "G"], ["mask", "M"]];

export const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
const r1 = (v) => Math.round(v * 10) / 10;

// ---------------------------------------------------------------- COCO RLE (column-major, starting with a 0-run)

export function rleEncode(mask, w, h) {
    const counts = [];
    let cur = 0, run = 0;
    for (let x = 0; x < w; x++) {
        for (let y = 0, i = x; y < h; y++, i += w) {
            const v = mask[i] ? 1 : 0;
            if (v !== cur) { counts.push(run); run = 0; cur = v; }
            run++;
        }
    }
    counts.push(run);
    return { size: [h, w], counts };
}

function countsFromString(s) {
    const counts = [];
    let p = 0;
    while (p < s.length) {
        let x = 0, k = 0, more = true;
        while (more) {
            if (p >= s.length) throw new Error("truncated compressed RLE string");
            const c = s.charCodeAt(p) - 48;
            if (c < 0 || c >= 64) throw new Error("invalid character in compressed RLE string");
            x |= (c & 0x1f) << (5 * k);
            more = (c & 0x20) !== 0;
            p++; k++;
            if (!more && (c & 0x10)) x |= -1 << (5 * k);
        }
        if (counts.length > 2) x += counts[counts.length - 2];
        counts.push(x);
    }
    return counts;
}

export function rleDecode(rle, w, h) {
    if (!rle || !Array.isArray(rle.size)) throw new Error("mask is not COCO RLE");
    const [rh, rw] = rle.size;
    const counts = typeof rle.counts === "string" ? countsFromString(rle.counts) : rle.counts;
    if (!Array.isArray(counts)) throw new Error("mask RLE counts must be a list or a string");
    const src = new Uint8Array(rw * rh);
    let pos = 0, val = 0;
    for (const c of counts) {
        if (val) for (let j = pos; j < pos + c && j < src.length; j++) src[(j % rh) * rw + Math.floor(j / rh)] = 1;
        pos += c; val ^= 1;
    }
    return rw === w && rh === h ? src : resampleMask(src, rw, rh, w, h);
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

// ---------------------------------------------------------------- instances and layout JSON

function nested(v) {
    return Array.isArray(v) && v.length > 0 && Array.isArray(v[0]) && v[0].length > 0 && Array.isArray(v[0][0]);
}

const points = (v) => (nested(v) ? v : [v]).map((s) => s.map((p) => [Number(p[0]), Number(p[1])]));
const isIndex = (k) => Number.isInteger(k) && k >= 0;
export const isSeeded = (inst) => isIndex(inst?.seed);

export function newInstance(caption, color) {
    return { caption, color, weight: 1, box: null, point: null, scribble: null, polygon: null, mask: null, hidden: false,
             seed: null, origin: "user", stale: false, _seedSig: null, _seedColor: null, _rle: null, _mcv: null,
             _mdirty: true };
}

function instanceFrom(d, i, width, height) {
    if (typeof d !== "object" || d === null) throw new Error(`instance ${i} is not an object`);
    const inst = newInstance(String(d.caption ?? ""), typeof d.color === "string" ? d.color : PALETTE[i % PALETTE.length]);
    if (Array.isArray(d.box) && d.box.length === 4) inst.box = d.box.map(Number);
    if (Array.isArray(d.point) && d.point.length === 2) inst.point = d.point.map(Number);
    if (Array.isArray(d.scribble) && d.scribble.length) inst.scribble = points(d.scribble);
    if (Array.isArray(d.polygon) && d.polygon.length) inst.polygon = points(d.polygon);
    if (d.mask) inst.mask = rleDecode(d.mask, width, height);
    if (typeof d.weight === "number" && Number.isFinite(d.weight)) inst.weight = d.weight;
    if (isIndex(d.seed)) { inst.seed = d.seed; inst.origin = "edited"; }
    return inst;
}

/** layout_json text -> document {width, height, caption, instances, seedRemoved}. */
export function parseLayout(text, fallbackW, fallbackH) {
    const data = text && text.trim() ? JSON.parse(text) : {};
    if (typeof data !== "object" || data === null || Array.isArray(data)) throw new Error("layout_json must be a JSON object");
    const width = Number.isInteger(data.width) && data.width > 0 ? data.width : fallbackW;
    const height = Number.isInteger(data.height) && data.height > 0 ? data.height : fallbackH;
    const instances = (Array.isArray(data.instances) ? data.instances : []).map((d, i) => instanceFrom(d, i, width, height));
    const seedRemoved = Array.isArray(data.seed_removed) ? data.seed_removed.filter(isIndex) : [];
    return { width, height, caption: typeof data.caption === "string" ? data.caption : "", instances, seedRemoved };
}

export function hasMask(inst) {
    if (!inst.mask) return false;
    for (let i = 0; i < inst.mask.length; i++) if (inst.mask[i]) return true;
    return false;
}

export function instanceToJson(inst, w, h) {
    const d = { caption: inst.caption };
    if (inst.box) d.box = inst.box.map(r1);
    if (inst.point) d.point = inst.point.map(r1);
    if (inst.scribble && inst.scribble.length) d.scribble = inst.scribble.map((s) => s.map((p) => [r1(p[0]), r1(p[1])]));
    if (inst.polygon && inst.polygon.length) d.polygon = inst.polygon.map((s) => s.map((p) => [r1(p[0]), r1(p[1])]));
    if (hasMask(inst)) d.mask = inst._rle || (inst._rle = rleEncode(inst.mask, w, h));
    if (inst.color) d.color = inst.color;
    if (inst.weight !== 1) d.weight = inst.weight;  // omitted at 1, so unweighted layouts stay as they were
    if (isSeeded(inst)) d.seed = inst.seed;
    return d;
}

// An untouched seeded instance: what the backend returned, unchanged (not stored in layout_json).
function geometrySig(inst, w, h) {
    const d = instanceToJson(inst, w, h);
    delete d.color; delete d.seed;
    return JSON.stringify(d);
}

export function untouched(doc, inst) {
    return inst.origin === "seed" && inst._seedSig !== null && inst.color === inst._seedColor &&
        geometrySig(inst, doc.width, doc.height) === inst._seedSig;
}

/** Document -> layout_json text (one instance per line, so the text stays readable). */
export function layoutToJson(doc) {
    const head = JSON.stringify({ schema: SCHEMA, version: VERSION, width: doc.width, height: doc.height, caption: doc.caption });
    const rows = doc.instances.filter((inst) => !untouched(doc, inst))
        .map((inst) => "  " + JSON.stringify(instanceToJson(inst, doc.width, doc.height)));
    const removed = doc.seedRemoved?.length ? `,\n "seed_removed": ${JSON.stringify([...doc.seedRemoved].sort((a, b) => a - b))}` : "";
    return head.slice(0, -1) + ',\n "instances": [' + (rows.length ? "\n" + rows.join(",\n") + "\n " : "") + "]" + removed + "}";
}

/**
 * The Layout node's ui output {layout, layout_json} -> the document it shows: the backend's merged instances
 * exactly (geometry, order, origin), with the user's removed-seed list from the layout_json it merged.
 */
export function fromBackend(shown) {
    const data = shown.layout;
    const doc = parseLayout(JSON.stringify({ ...data, instances: [] }), data.width, data.height);
    doc.seedRemoved = parseLayout(shown.layout_json || "{}", data.width, data.height).seedRemoved;
    doc.instances = data.instances.map((d, i) => {
        const inst = instanceFrom(d, i, data.width, data.height);
        inst.origin = ["seed", "edited", "user"].includes(d.origin) ? d.origin : "user";
        if (inst.origin === "seed") {
            inst._seedColor = inst.color;
            inst._seedSig = geometrySig(inst, data.width, data.height);
        }
        return inst;
    });
    return doc;
}

/**
 * After layout_json changed outside the editor (typed, pasted): the untouched seeded instances shown so far stay
 * (as stale, until the next run) unless the new text edits or removes them; nothing is re-merged or re-scaled.
 */
export function keepShownSeeds(shownDoc, newDoc) {
    if (shownDoc.width !== newDoc.width || shownDoc.height !== newDoc.height) return newDoc;
    const taken = new Set(newDoc.seedRemoved);
    for (const inst of newDoc.instances) if (isSeeded(inst)) taken.add(inst.seed);
    const kept = shownDoc.instances.filter((inst) => untouched(shownDoc, inst) && !taken.has(inst.seed));
    for (const inst of kept) inst.stale = true;
    newDoc.instances = kept.concat(newDoc.instances);
    return newDoc;
}

export function problems(doc) {
    const out = [];
    doc.instances.forEach((inst, i) => {
        if (!inst.caption.trim()) out.push(`#${i}: needs a caption`);
        if (!inst.box && !inst.point && !(inst.scribble && inst.scribble.length) && !(inst.polygon && inst.polygon.length) && !hasMask(inst))
            out.push(`#${i}: draw a box, point, scribble, polygon or mask`);
    });
    if (doc.instances.length > MAX_INSTANCES) out.push(`at most ${MAX_INSTANCES} instances`);
    return out;
}

/** Scale the user's drawing to a new image size (seeded instances shown until the next run are marked stale). */
export function rescaleDoc(doc, w, h) {
    const sx = w / doc.width, sy = h / doc.height;
    const pt = (p) => [clamp(p[0] * sx, 0, w), clamp(p[1] * sy, 0, h)];
    for (const inst of doc.instances) {
        const keep = untouched(doc, inst);
        if (inst.box) {
            const [x, y, bw, bh] = inst.box;
            const nx = clamp(Math.round(x * sx), 0, w - 1), ny = clamp(Math.round(y * sy), 0, h - 1);
            inst.box = [nx, ny, clamp(Math.round(bw * sx), 1, w - nx), clamp(Math.round(bh * sy), 1, h - ny)];
        }
        if (inst.point) inst.point = pt(inst.point);
        if (inst.scribble) inst.scribble = inst.scribble.map((s) => s.map(pt));
        if (inst.polygon) inst.polygon = inst.polygon.map((s) => s.map(pt));
        if (inst.mask) { inst.mask = resampleMask(inst.mask, doc.width, doc.height, w, h); inst._rle = null; inst._mdirty = true; inst._mcv = null; }
        if (keep) { inst.stale = true; inst._seedSig = geometrySig(inst, w, h); }
    }
    doc.width = w; doc.height = h;
}

// ---------------------------------------------------------------- whole-document state (undo steps)

/** The document as plain JSON, including what layout_json does not store (untouched seeds, flags). */
export function saveState(doc, sel) {
    const keep = (inst) => ({ d: instanceToJson(inst, doc.width, doc.height), origin: inst.origin, stale: inst.stale,
                              hidden: inst.hidden, sig: inst._seedSig, seedColor: inst._seedColor });
    return JSON.stringify({ width: doc.width, height: doc.height, caption: doc.caption, seedRemoved: doc.seedRemoved,
                            instances: doc.instances.map(keep), sel });
}

export function loadState(text) {
    const s = JSON.parse(text);
    const doc = { width: s.width, height: s.height, caption: s.caption, seedRemoved: [...s.seedRemoved] };
    doc.instances = s.instances.map((r, i) => Object.assign(instanceFrom(r.d, i, s.width, s.height),
        { origin: r.origin, stale: r.stale, hidden: r.hidden, _seedSig: r.sig, _seedColor: r.seedColor }));
    return { doc, sel: s.sel };
}

/** Undo/redo of document states (strings from saveState); `base` is the state at the last committed change. */
export class History {
    constructor(limit = 100) { this.limit = limit; this.undos = []; this.redos = []; this.base = null; }

    reset(state) { this.undos = []; this.redos = []; this.base = state; }

    /** Record `state` as the new base; the old base becomes an undo step when they differ. */
    commit(state) {
        if (this.base !== null && state !== this.base) {
            this.undos.push(this.base);
            if (this.undos.length > this.limit) this.undos.shift();
            this.redos = [];
        }
        this.base = state;
    }

    undo(current) { return this.step(this.undos, this.redos, current); }

    redo(current) { return this.step(this.redos, this.undos, current); }

    step(from, to, current) {
        if (!from.length) return null;
        to.push(current);
        this.base = from.pop();
        return this.base;
    }
}

// ---------------------------------------------------------------- geometry

export const snap = (v, grid) => (grid > 0 ? Math.round(v / grid) * grid : Math.round(v));

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
