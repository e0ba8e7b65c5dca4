// The layout editor's document: layout JSON <-> instances, scaling, undo history (each location kind's part in
// kinds.js, the mask codec in rle.js, geometry in geometry.js).
// Pure module (no DOM, no host app): unit-tested with `node --test tests/web`. Loaded by the host as an
// extension too (every .js under web/ is), so it must have no side effects on import.
//
// Seeded instances come from the backend: the Layout node merges its seed_layout input with the user's records
// and returns the merged layout, each instance with its "origin" ("seed", "edited" or "user"); fromBackend()
// turns that into a document as is. The editor never merges or scales seeds itself. It stores in layout_json only
// what the user made or changed ("seed": k on an edit of seed instance k, "seed_removed" for deleted ones).

import { MAX_INSTANCES, PALETTE, SCHEMA, VERSION } from "./constants.js";
import { CHOICES, KINDS } from "./kinds.js";

// ---------------------------------------------------------------- instances and layout JSON

const isIndex = (k) => Number.isInteger(k) && k >= 0;
export const isSeeded = (inst) => isIndex(inst?.seed);

export function newInstance(caption, color) {
    const inst = { caption, color, weight: 1 };
    for (const kind of KINDS) inst[kind.key] = null;
    return Object.assign(inst, { hidden: false, seed: null, origin: "user", stale: false, _seedSig: null, _seedColor: null,
                                 _rle: null, _mcv: null, _mdirty: true });
}

function instanceFrom(d, i, width, height) {
    if (typeof d !== "object" || d === null) throw new Error(`instance ${i} is not an object`);
    const inst = newInstance(String(d.caption ?? ""), typeof d.color === "string" ? d.color : PALETTE[i % PALETTE.length]);
    for (const kind of KINDS) inst[kind.key] = kind.read(d[kind.key], width, height);
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

export function instanceToJson(inst, w, h) {
    const d = { caption: inst.caption };
    for (const kind of KINDS) if (kind.has(inst)) d[kind.key] = kind.toJson(inst, w, h);
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
        if (!KINDS.some((kind) => kind.has(inst))) out.push(`#${i}: draw ${CHOICES}`);
    });
    if (doc.instances.length > MAX_INSTANCES) out.push(`at most ${MAX_INSTANCES} instances`);
    return out;
}

/** Scale the user's drawing to a new image size (seeded instances shown until the next run are marked stale). */
export function rescaleDoc(doc, w, h) {
    const sx = w / doc.width, sy = h / doc.height;
    for (const inst of doc.instances) {
        const keep = untouched(doc, inst);
        for (const kind of KINDS) if (inst[kind.key]) kind.scale(inst, sx, sy, w, h, doc.width, doc.height);
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
