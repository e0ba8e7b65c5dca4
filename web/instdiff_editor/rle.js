// COCO run-length encoding of masks as instdiff_model/rle.py reads and writes it (column-major runs starting with a
// 0-run; compressed strings: 5-bit chunks from "0", delta-coded from the third count). Pure module; the codec is
// checked against the Python one by tests/test_editor_code.py.
import { resampleMask } from "./geometry.js";

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

/** One number of a compressed counts string from position p: [value, next position]. */
function readCount(s, p) {
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
    return [x, p];
}

function countsFromString(s) {
    const counts = [];
    let p = 0, x;
    while (p < s.length) {
        [x, p] = readCount(s, p);
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
