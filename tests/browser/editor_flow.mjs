// Drives the layout editor in Debian chromium with playwright-core (no browser download):
//   node editor_flow.mjs <host url> <artifact dir>
// Builds a graph on the host's UI, draws one instance of each kind with real mouse events, types captions,
// queues the prompt, waits for the run, then reloads the page, loads the saved workflow and checks the restore.
// Writes <artifact dir>/result.json (read by tests/test_editor_browser.py) and screenshots.
// Independent of the frontend version: node ids are compared as strings (graph.serialize() writes numbers where
// createNode gave strings), and the canvas is scrolled until the editor is in view whatever the node sizes are.
// The 2026 frontend's settings come from the environment (unset: the host's defaults):
//   INSTDIFF_VUE_NODES=1|0   Nodes 2.0 (Comfy.VueNodes.Enabled) on or off
//   INSTDIFF_RIGHT_PANEL=1|0 the right-side Parameters panel open or closed (Comfy.RightSidePanel.IsOpen)
import fs from "node:fs";
import path from "node:path";
import { launchForHost } from "./launch.mjs";

const [url, outDir] = process.argv.slice(2);
const W = 256, H = 192;
fs.mkdirSync(outDir, { recursive: true });
const result = { console: [], steps: [] };
const step = (s) => { result.steps.push(s); console.log("step:", s); };
const save = () => fs.writeFileSync(path.join(outDir, "result.json"), JSON.stringify(result, null, 1));

const { context, profile } = await launchForHost(url, { width: 1280, height: 1000 });

let page;
try {
    page = context.pages()[0] || await context.newPage();
    page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") result.console.push(`${m.type()}: ${m.text()}`); });
    page.on("pageerror", (e) => result.console.push(`pageerror: ${e.message} (after step "${result.steps.at(-1)}"; ` +
        `${(e.stack || "").split("\n").slice(1, 4).map((s) => s.trim()).join(" < ")})`));
    // NEW frontend: skip the templates modal on a fresh user (harmless on the old one), plus the asked-for modes.
    const settings = { "Comfy.TutorialCompleted": true };
    for (const [env, key] of [["INSTDIFF_VUE_NODES", "Comfy.VueNodes.Enabled"], ["INSTDIFF_RIGHT_PANEL", "Comfy.RightSidePanel.IsOpen"]]) {
        if (process.env[env]) settings[key] = process.env[env] === "1";
    }
    await page.request.post(`${url}/settings`, { data: settings }).catch(() => {});
    const stats = await (await page.request.get(`${url}/system_stats`)).json().catch(() => ({}));
    result.frontend = { core: stats?.system?.comfyui_version ?? null, settings };

    const ready = async () => {
        await page.waitForFunction(() => {
            const a = window.comfyAPI?.app?.app || window.app;
            return !!(a && a.graph && a.canvas && window.LiteGraph?.registered_node_types?.InstanceDiffusionLayout);
        }, null, { timeout: 60000 });
    };
    // graph-building helpers for the page scripts below, defined on every page load
    await page.addInitScript(() => {
        const app = () => window.comfyAPI?.app?.app || window.app;
        window.__instdiffGraph = {
            node(id) {   // by id of either type
                const g = app().graph;
                return g.getNodeById(id) ?? g.getNodeById(Number(id)) ?? (g._nodes || g.nodes).find((n) => String(n.id) === String(id));
            },
            // Scroll the canvas by (dx, dy) screen pixels.
            pan(dx, dy) {
                const ds = app().canvas.ds;
                ds.offset[0] += dx / ds.scale;
                ds.offset[1] += dy / ds.scale;
                app().graph.setDirtyCanvas(true, true);
            },
            add(type, pos, values = {}) {
                const n = window.LiteGraph.createNode(type);
                n.pos = pos;
                app().graph.add(n);
                for (const [k, v] of Object.entries(values)) {
                    const w = n.widgets.find((x) => x.name === k);
                    if (!w) throw new Error(`${type} has no widget ${k}`);
                    w.value = v;
                    w.callback?.(v);
                }
                return n;
            },
            link(a, out, b, inputName) {
                const slot = b.inputs.findIndex((i) => i.name === inputName);
                if (slot < 0) throw new Error(`${b.type} has no input ${inputName}`);
                a.connect(out, b, slot);
            },
        };
    });
    await page.goto(url, { waitUntil: "domcontentloaded" });
    await ready();
    await page.waitForTimeout(1500);   // the 2026 frontend may still be loading its default workflow
    result.frontend.version = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ ?? null);
    step("app ready");
    // Scroll the canvas until the node's editor sits at (100, 130) of the page, below the 2026 top menus (node sizes differ between frontends).
    const reveal = async () => {
        for (let i = 0; i < 20; i++) {
            const r = await page.evaluate(() => document.querySelector(".instdiff-frame .instdiff-editor")?.getBoundingClientRect().toJSON());
            if (r && r.width > 0 && Math.abs(r.left - 100) < 2 && Math.abs(r.top - 130) < 2) return;
            if (r && r.width > 0) await page.evaluate(([dx, dy]) => window.__instdiffGraph.pan(dx, dy), [100 - r.left, 130 - r.top]);
            await page.waitForTimeout(150);
        }
        throw new Error("the layout editor did not come into view");
    };

    // ---- graph: layout -> preview -> save, plus the tiny-model sampling chain using the same layout
    // The 2026 frontend loads its start-up workflow late (slow machines, Nodes 2.0): wait for it, and build again
    // should it still replace the graph built here.
    await page.waitForFunction(() => {
        const g = (window.comfyAPI?.app?.app || window.app).graph;
        return (g._nodes || g.nodes).length > 0;
    }, null, { timeout: 15000 }).catch(() => {});
    const kept = async (id) => {
        await page.waitForTimeout(1000);
        return page.evaluate((id) => window.__instdiffGraph.node(id)?.type === "InstanceDiffusionLayout" &&
            !!document.querySelector(".instdiff-frame"), id);
    };
    const buildMain = () => page.evaluate(({ W, H }) => {
        const app = window.comfyAPI?.app?.app || window.app;
        app.graph.clear();
        const { add, link } = window.__instdiffGraph;
        const layout = add("InstanceDiffusionLayout", [20, 40], { width: W, height: H, caption: "a test scene" });
        layout.setSize([560, 860]);
        const preview = add("InstanceDiffusionLayoutPreview", [1500, 40]);
        const savePrev = add("SaveImage", [1800, 40], { filename_prefix: "editor_preview" });
        link(layout, 0, preview, "layout");
        link(preview, 0, savePrev, "images");
        const models = add("InstDiffTestRandomTinySD15", [700, 500], { seed: 1, model_channels: 32 });
        const instdiff = add("InstDiffTestRandomInstanceDiffusion", [700, 700], { salt: "tiny", model_channels: 32 });
        const tok = add("InstanceDiffusionTokenizer", [1000, 500], { config: "auto", sample_seed: 0 });
        link(models, 1, tok, "clip"); link(layout, 0, tok, "layout"); link(instdiff, 0, tok, "instancediffusion");
        const apply = add("ApplyInstanceDiffusion", [1000, 700]);
        link(models, 0, apply, "model"); link(instdiff, 0, apply, "instancediffusion"); link(tok, 0, apply, "instance_conditioning");
        const pos = add("CLIPTextEncode", [1000, 900], { text: "a test scene" });
        const neg = add("CLIPTextEncode", [1000, 1100], { text: "blurry" });
        link(models, 1, pos, "clip"); link(models, 1, neg, "clip");
        const latent = add("EmptyLatentImage", [1000, 1300], { width: W, height: H, batch_size: 1 });
        const ks = add("KSampler", [1300, 700], { seed: 5, steps: 2, cfg: 7.0, sampler_name: "euler", scheduler: "normal", denoise: 1.0 });
        link(apply, 0, ks, "model"); link(pos, 0, ks, "positive"); link(neg, 0, ks, "negative"); link(latent, 0, ks, "latent_image");
        const dec = add("VAEDecode", [1600, 700]);
        link(ks, 0, dec, "samples"); link(models, 2, dec, "vae");
        const saveImg = add("SaveImage", [1900, 700], { filename_prefix: "editor_sample" });
        link(dec, 0, saveImg, "images");
        app.canvas.ds.scale = 1;
        app.canvas.ds.offset = [90, 70];  // clear of the side bar and top menu of the new frontend
        app.graph.setDirtyCanvas(true, true);
        return { layout: String(layout.id), preview: String(preview.id), savePreview: String(savePrev.id), saveImage: String(saveImg.id) };
    }, { W, H });
    let ids = await buildMain();
    for (let i = 0; !(await kept(ids.layout)); i++) {
        if (i === 4) throw new Error("the graph built here kept being replaced");
        ids = await buildMain();
    }
    result.ids = ids;
    step("graph built");
    await reveal();

    const editor = page.locator(".instdiff-editor").first();
    await editor.waitFor({ state: "visible", timeout: 10000 });
    const canvas = editor.locator("canvas");
    await page.waitForFunction(() => document.querySelector(".instdiff-editor canvas")?.getBoundingClientRect().width > 100);
    // Image pixel -> page coordinates, from the canvas' on-screen rectangle.
    const at = async (x, y) => {
        const r = await canvas.boundingBox();
        return [r.x + (x / W) * r.width, r.y + (y / H) * r.height];
    };
    const mouseAt = async (x, y) => { const [px, py] = await at(x, y); await page.mouse.move(px, py); };
    const dragPath = async (pts, steps = 6) => {
        await mouseAt(...pts[0]);
        await page.mouse.down();
        for (const p of pts.slice(1)) { const [px, py] = await at(...p); await page.mouse.move(px, py, { steps }); }
        await page.mouse.up();
    };
    const clickAt = async (x, y) => { const [px, py] = await at(x, y); await page.mouse.click(px, py); };
    const tool = (name) => editor.locator(`button[data-tool="${name}"]`).click();
    const action = (name) => editor.locator(`button[data-act="${name}"]`).first().click();
    const caption = async (i, text) => {
        const input = editor.locator(`.ide-row[data-index="${i}"] input[type=text]`);
        await input.click();
        await page.keyboard.type(text);
        await page.keyboard.press("Tab");
    };
    // The host may be shared with other tests: wait for a history entry that was not there before queueing.
    const queueAndWait = async () => {
        const before = new Set(Object.keys(await (await page.request.get(`${url}/history`)).json()));
        await page.evaluate(() => (window.comfyAPI?.app?.app || window.app).queuePrompt(0, 1));
        step("queued");
        const deadline = Date.now() + 240000;   // generous: CI machines may be loaded
        let entry = null;
        while (Date.now() < deadline && !entry) {
            const hist = await (await page.request.get(`${url}/history`)).json();
            const fresh = Object.keys(hist).filter((k) => !before.has(k));
            if (fresh.length) entry = hist[fresh[fresh.length - 1]];
            else await page.waitForTimeout(300);
        }
        return entry;
    };
    const layoutValue = () => page.evaluate((id) => window.__instdiffGraph.node(id).widgets.find((w) => w.name === "layout_json").value, ids.layout);
    // The editor's size on the page, and a click on the node's title (selects it: the 2026 Parameters panel shows it).
    const frameSize = () => page.evaluate(() => {
        const r = document.querySelector(".instdiff-frame").getBoundingClientRect();
        const c = document.querySelector(".instdiff-frame canvas").getBoundingClientRect();
        return { frameW: r.width, frameH: r.height, canvasW: c.width, canvasH: c.height };
    });
    const clickTitle = async (id) => {
        const titleAt = () => page.evaluate((id) => {
            const app = window.comfyAPI?.app?.app || window.app;
            const n = window.__instdiffGraph.node(id), ds = app.canvas.ds, r = app.canvas.canvas.getBoundingClientRect();
            return [r.left + (n.pos[0] + 80 + ds.offset[0]) * ds.scale, r.top + (n.pos[1] - 15 + ds.offset[1]) * ds.scale];
        }, id);
        let [x, y] = await titleAt();
        if (y < 120) {   // a tall node (the 2026 caption box grows) has its title above the page: bring it down
            await page.evaluate((dy) => window.__instdiffGraph.pan(0, dy), 160 - y);
            await page.waitForTimeout(300);
            [x, y] = await titleAt();
        }
        await page.mouse.click(x, y);
        await page.waitForTimeout(300);
        await reveal();
    };

    // the editor keeps its size when the node gets selected, by its title or by a click in the editor
    result.sizes = [await frameSize()];
    await clickTitle(ids.layout);
    await page.waitForTimeout(500);
    result.sizes.push(await frameSize());
    await editor.locator(".ide-status").click();
    await page.waitForTimeout(500);
    result.sizes.push(await frameSize());
    result.selected = await page.evaluate((id) => {
        const app = window.comfyAPI?.app?.app || window.app;
        const picked = [...Object.values(app.canvas.selected_nodes || {}), ...(app.canvas.selectedItems || [])];  // 2024, 2026
        return picked.map((n) => String(n.id)).includes(String(id));
    }, ids.layout);
    await page.screenshot({ path: path.join(outDir, "page_selected.png") });
    step("selected");

    // 0: box, drawn then moved with the select tool (and the move undone/redone)
    await action("add"); await caption(0, "a red box");
    await tool("box"); await dragPath([[16, 16], [96, 80]]);
    await tool("select"); await dragPath([[56, 50], [66, 60]]);   // move by (+10, +10)
    result.afterMove = JSON.parse(await layoutValue()).instances[0]?.box;
    await action("undo");
    result.afterUndo = JSON.parse(await layoutValue()).instances[0]?.box;
    await action("redo");
    await dragPath([[66, 60], [56, 50]]);                         // and back to where it was drawn
    // 1: point
    await action("add"); await caption(1, "a point");
    await tool("point"); await clickAt(200, 40);
    // 2: scribble
    await action("add"); await caption(2, "a scribble");
    await tool("scribble"); await dragPath([[130, 120], [160, 140], [190, 120], [220, 140]]);
    // 3: polygon closed by clicking its first vertex
    await action("add"); await caption(3, "a polygon");
    await tool("polygon");
    for (const p of [[20, 110], [90, 110], [90, 175], [20, 175], [20, 110]]) await clickAt(...p);
    // 4: mask painted with the brush, a bit erased at the end
    await action("add"); await caption(4, "a mask");
    await editor.locator('input[type=range]').fill("12");
    await tool("brush"); await dragPath([[120, 60], [175, 60]], 10);
    await tool("eraser"); await dragPath([[180, 60], [176, 60]], 2);
    step("drawn");
    await page.waitForTimeout(200);
    result.layoutJson = await layoutValue();
    // the canvas fills the node's width (at the layout's aspect) and the JSON text is hidden
    // layout_json text boxes shown on the node (not elsewhere, e.g. in the 2026 Parameters panel)
    const jsonBoxes = () => page.evaluate((id) => {
        const app = window.comfyAPI?.app?.app || window.app;
        const n = window.__instdiffGraph.node(id), ds = app.canvas.ds, r = app.canvas.canvas.getBoundingClientRect();
        const [x0, y0] = [r.left + (n.pos[0] + ds.offset[0]) * ds.scale, r.top + (n.pos[1] + ds.offset[1]) * ds.scale];
        const onNode = (b) => b.x + b.width / 2 > x0 && b.x + b.width / 2 < x0 + n.size[0] * ds.scale &&
            b.y + b.height / 2 > y0 && b.y + b.height / 2 < y0 + n.size[1] * ds.scale;
        return [...document.querySelectorAll("textarea")].filter((t) => t.value.includes("instdiff.layout") && t.offsetParent &&
            t.getBoundingClientRect().height > 10 && onNode(t.getBoundingClientRect())).length;
    }, ids.layout);
    result.fit = await page.evaluate(() => {
        const c = document.querySelector(".instdiff-editor canvas").getBoundingClientRect();
        const f = document.querySelector(".instdiff-frame").getBoundingClientRect();
        return { canvasW: c.width, canvasH: c.height, frameW: f.width };
    });
    result.fit.visibleJsonBoxes = await jsonBoxes();
    await action("json");
    await page.waitForTimeout(200);
    result.fit.jsonShown = await jsonBoxes();
    await reveal();                                         // the node grew for the text
    await action("json");
    await page.waitForTimeout(200);
    result.fit.jsonHiddenAgain = await jsonBoxes();
    await reveal();
    await page.mouse.move(5, 5);                            // no hover highlight in the picture
    await page.waitForTimeout(100);
    await editor.screenshot({ path: path.join(outDir, "editor.png") });
    await page.screenshot({ path: path.join(outDir, "page_drawn.png") });

    // ---- what the frontend sends, then a real run
    result.prompt = await page.evaluate(async (id) => {
        const app = window.comfyAPI?.app?.app || window.app;
        const p = await app.graphToPrompt();
        return p.output[String(id)];
    }, ids.layout);
    result.history = await queueAndWait();
    step("ran");

    // ---- save the workflow, reload the page, load it back
    const workflow = await page.evaluate(() => (window.comfyAPI?.app?.app || window.app).graph.serialize());
    result.workflowLayoutValues = workflow.nodes.find((n) => String(n.id) === ids.layout)?.widgets_values;
    await page.reload({ waitUntil: "domcontentloaded" });
    await ready();
    await page.waitForTimeout(1500);   // as at the start: let the 2026 frontend finish restoring its workflow
    await page.evaluate(async (wf) => {
        const app = window.comfyAPI?.app?.app || window.app;
        app.graph.clear();
        await app.loadGraphData(wf);
        app.canvas.ds.scale = 1;
        app.canvas.ds.offset = [90, 70];  // clear of the side bar and top menu of the new frontend
        app.graph.setDirtyCanvas(true, true);
    }, workflow);
    step("reloaded");
    await page.waitForTimeout(800);
    await reveal();
    result.restoredJson = await layoutValue();
    result.restoredRows = await page.locator(".instdiff-editor .ide-row").count();
    result.restoredCaptions = await page.locator(".instdiff-editor .ide-row input[type=text]").evaluateAll((xs) => xs.map((x) => x.value));
    result.restoredPixels = await page.evaluate(() => {
        const c = document.querySelector(".instdiff-editor canvas");
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let coloured = 0;
        for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - 48) + Math.abs(d[i + 1] - 48) + Math.abs(d[i + 2] - 48) > 30) coloured++;
        return { coloured, total: d.length / 4 };
    });
    await page.locator(".instdiff-editor").first().screenshot({ path: path.join(outDir, "editor_restored.png") });
    step("restored");

    // ---- the pop-out: a large canvas, same tools; keys: tool letters, Ctrl+Z / Ctrl+Y, Delete, Esc closes
    result.popout = { nodeCanvasW: (await canvas.boundingBox()).width };
    await action("popout");
    await page.locator(".instdiff-popout .instdiff-editor canvas").waitFor({ state: "visible" });
    await page.waitForTimeout(300);
    result.popout.canvasW = (await canvas.boundingBox()).width;
    await clickAt(250, 5);                                  // focus the canvas (a click draws nothing)
    await page.keyboard.press("b");
    await dragPath([[150, 100], [240, 180]]);
    result.popout.box = JSON.parse(await layoutValue()).instances[5]?.box;
    await page.keyboard.press("Control+z");
    result.popout.afterUndo = JSON.parse(await layoutValue()).instances.length;
    await page.keyboard.press("Control+y");
    result.popout.afterRedo = JSON.parse(await layoutValue()).instances.length;
    await caption(5, "a popped box");
    await clickAt(250, 5);
    await page.keyboard.press("v");
    result.popout.tool = await page.locator('.instdiff-editor button.on[data-tool]').getAttribute("data-tool");
    await page.screenshot({ path: path.join(outDir, "editor-popout.png") });
    await clickAt(200, 120);                                // select the new box
    await page.keyboard.press("Delete");
    result.popout.afterDelete = JSON.parse(await layoutValue()).instances.map((i) => i.caption);
    await page.keyboard.press("Escape");
    await page.waitForTimeout(200);
    result.popout.closed = (await page.locator(".instdiff-popout").count()) === 0;
    result.popout.backInNode = await page.evaluate(() => !!document.querySelector(".instdiff-frame .instdiff-editor canvas"));
    result.popout.canvasAfterW = (await canvas.boundingBox()).width;
    step("popout");

    // ---- seeding: Layout from detections -> seed_layout; run; the seeded boxes appear; move one; run again
    const seedIds = await page.evaluate(({ W, H }) => {
        const app = window.comfyAPI?.app?.app || window.app;
        app.graph.clear();
        const { add, link } = window.__instdiffGraph;
        const dets = add("InstanceDiffusionLayoutFromDetections", [1300, 40], { width: W, height: H, box_format: "xywh",
            boxes_json: JSON.stringify([{ bbox: [16, 16, 64, 48], label: "a cat" }, { bbox: [120, 100, 64, 48], label: "a dog" },
                                        { bbox: [180, 16, 48, 40], label: "a bird" }]) });
        const layout = add("InstanceDiffusionLayout", [20, 40], { caption: "seeded scene" });
        layout.setSize([560, 860]);
        link(dets, 0, layout, "seed_layout");
        const preview = add("InstanceDiffusionLayoutPreview", [700, 40]);
        const save = add("SaveImage", [950, 40], { filename_prefix: "editor_seeded" });
        link(layout, 0, preview, "layout");
        link(preview, 0, save, "images");
        app.canvas.ds.scale = 1;
        app.canvas.ds.offset = [90, 70];
        app.graph.setDirtyCanvas(true, true);
        return { layout: String(layout.id), save: String(save.id) };
    }, { W, H });
    result.seedIds = seedIds;
    await reveal();
    const seedLayoutValue = () => page.evaluate((id) => {
        const n = window.__instdiffGraph.node(id);
        return { json: n.widgets.find((w) => w.name === "layout_json").value,
                 width: n.widgets.find((w) => w.name === "width").value, height: n.widgets.find((w) => w.name === "height").value };
    }, seedIds.layout);
    result.seedFirst = await queueAndWait();
    await page.waitForFunction(() => document.querySelectorAll(".instdiff-editor .ide-row").length === 3, null, { timeout: 10000 });
    await page.waitForTimeout(300);
    result.seededRows = await page.locator(".instdiff-editor .ide-row input[type=text]").evaluateAll((xs) => xs.map((x) => x.value));
    result.seededWidget = await seedLayoutValue();
    await tool("select");
    await dragPath([[152, 124], [92, 124]]);      // the dog box, moved 60 px left
    await page.waitForTimeout(200);
    result.seededAfterMove = await seedLayoutValue();
    await editor.screenshot({ path: path.join(outDir, "editor_seeded.png") });
    result.seedSecond = await queueAndWait();
    // the run's ui output may reach the page after its history entry: wait until the editor shows the dog as edited
    await page.waitForFunction((id) => window.__instdiffGraph.node(id).instdiffEditor.doc.instances.some((i) => i.origin === "edited"),
        seedIds.layout, { timeout: 10000 });
    // the editor shows the backend's merge exactly: resize (seeds shown dashed, as of the last run), run, compare
    await page.evaluate((id) => {
        const w = window.__instdiffGraph.node(id).widgets.find((x) => x.name === "height");
        w.value = 200; w.callback?.(200);
    }, seedIds.layout);
    await page.waitForTimeout(300);
    const shownByEditor = () => page.evaluate((id) => {
        const ed = window.__instdiffGraph.node(id).instdiffEditor;
        return ed.doc.instances.map((i) => ({ caption: i.caption, box: i.box, origin: i.origin, stale: i.stale }));
    }, seedIds.layout);
    result.seedStale = await shownByEditor();
    result.seedThird = await queueAndWait();
    await page.waitForFunction((id) => {
        const ed = window.__instdiffGraph.node(id).instdiffEditor;
        return ed.doc.height === 200 && !ed.doc.instances.some((i) => i.stale);
    }, seedIds.layout, { timeout: 10000 });
    result.seedShown = await shownByEditor();
    step("done");
} catch (exc) {
    result.error = String(exc?.stack || exc);
    await page?.screenshot({ path: path.join(outDir, "page_error.png") }).catch(() => {});
} finally {
    save();
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
}
