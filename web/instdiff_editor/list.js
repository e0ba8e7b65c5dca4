// Layout editor instance list: one row per instance (number, colour, caption, weight, kinds, visibility, order and
// delete buttons), editing the document through the editor (ed). No side effects on import.
import { MAX_WEIGHT, MIN_WEIGHT, PALETTE } from "./constants.js";
import { isSeeded, untouched } from "./document.js";
import { button, el } from "./dom.js";
import { KINDS, letters } from "./kinds.js";

const KINDS_TITLE = KINDS.map((kind) => `${kind.letter} ${kind.key}`).join(", ");

/** The inputs of a row: caption, colour and weight (typing writes layout_json, leaving the field commits). */
function inputs(ed, inst, i) {
    const doc = ed.document, edited = () => doc.write(), commit = () => doc.commit();
    const cap = el("input", { type: "text", value: inst.caption, placeholder: `caption of instance ${i}`,
        oninput: () => { inst.caption = cap.value; edited(); ed.render(); ed.refreshStatus(); },
        onchange: commit,
        onfocus: () => { if (doc.sel !== i) ed.select(i); } });
    const color = el("input", { type: "color", value: inst.color || PALETTE[i % PALETTE.length], title: "Colour",
        oninput: () => { inst.color = color.value; inst._mdirty = true; edited(); ed.render(); },
        onchange: commit });
    const weight = el("input", { type: "number", className: "ide-weight", min: MIN_WEIGHT, max: MAX_WEIGHT, step: 0.05, value: inst.weight,
        title: `Weight: how strongly the model enforces this instance in its region (1 = official, 0 = off, up to ${MAX_WEIGHT})`,
        oninput: () => { const v = Number(weight.value); if (weight.value !== "" && v >= MIN_WEIGHT && v <= MAX_WEIGHT) { inst.weight = v; edited(); } },
        onchange: commit });
    return [color, cap, weight];
}

/** The instance's number, marked ⇣ when it comes from seed_layout. */
function number(doc, inst, i, seeded) {
    const title = seeded ? `From seed_layout instance ${inst.seed}` +
        (untouched(doc, inst) ? (inst.stale ? " (as of the last run)" : "") : " (edited: your version is kept)") : "";
    return el("span", { textContent: seeded ? `${i}⇣` : String(i), style: { minWidth: "14px", textAlign: "right" }, title });
}

export function instanceRow(ed, i) {
    const doc = ed.document.doc, inst = doc.instances[i];
    const seededAt = (j) => isSeeded(doc.instances[j]) && doc.instances[j].origin !== "user";
    const seeded = seededAt(i);
    const kinds = el("span", { className: "ide-kinds", title: KINDS_TITLE, textContent: letters(inst) });
    const vis = el("button", { textContent: inst.hidden ? "◌" : "◉", title: inst.hidden ? "Hidden in the editor (still used): show" : "Hide in the editor (still used)",
        onclick: () => { inst.hidden = !inst.hidden; ed.refreshList(); ed.render(); ed.saveView(); } });
    const num = number(doc, inst, i, seeded);
    const row = el("div", { className: "ide-row" + (i === ed.document.sel ? " sel" : ""),
        onpointerdown: (e) => { if (e.target === row || e.target === kinds || e.target === num) ed.select(i); } });
    if (seeded) row.dataset.seed = String(inst.seed);
    row.dataset.origin = inst.origin;
    row.dataset.index = String(i);
    const [color, cap, weight] = inputs(ed, inst, i);
    row.append(num, color, cap, weight, kinds, vis,
        button("up", "▲", "Move up (earlier in the prompt)", () => ed.document.move(i, -1), i === 0 || seeded || seededAt(i - 1)),
        button("down", "▼", "Move down", () => ed.document.move(i, 1), i === doc.instances.length - 1 || seeded || seededAt(i + 1)),
        button("delete", "✕", "Delete this instance (Delete)", () => ed.document.remove(i)));
    return row;
}
