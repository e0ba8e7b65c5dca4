// The instance weight in the editor's document module: read, written only when it is not 1, part of a seed's edit.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fromBackend, layoutToJson, parseLayout, untouched } from "../../web/instdiff_editor/document.js";

const text = (instances) => JSON.stringify({ schema: "instdiff.layout", version: 1, width: 100, height: 50,
    caption: "c", instances });

test("weight: parsed, kept through a round trip, omitted at 1", () => {
    const doc = parseLayout(text([{ caption: "a", box: [1, 1, 10, 10], weight: 1.5 }, { caption: "b", point: [5, 5] }]), 100, 50);
    assert.deepEqual(doc.instances.map((i) => i.weight), [1.5, 1]);
    const back = JSON.parse(layoutToJson(doc)).instances;
    assert.equal(back[0].weight, 1.5);
    assert.equal("weight" in back[1], false);
    doc.instances[0].weight = 1;
    assert.equal(layoutToJson(doc).includes("weight"), false);
});

test("weight: re-weighting a seeded instance makes it the user's edit", () => {
    const doc = fromBackend({ layout_json: text([]), layout: { schema: "instdiff.layout", version: 1, width: 100, height: 50,
        caption: "c", instances: [{ caption: "cat", box: [1, 2, 20, 10], origin: "seed", seed: 0 }] } });
    assert.equal(untouched(doc, doc.instances[0]), true);
    doc.instances[0].weight = 2;
    assert.equal(untouched(doc, doc.instances[0]), false);
    assert.equal(JSON.parse(layoutToJson(doc)).instances[0].weight, 2);
});
