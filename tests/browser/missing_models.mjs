// By hand (not in CI): what the 2026 frontend's missing-models report offers for each shipped workflow, loaded the way
// a drop does (app.handleFile), on a host whose models/ lacks the files the workflows name.
//   node missing_models.mjs <host url> <workflows dir> <out dir> [classic|vue|legacy]
// (legacy: on the 2024 host, only that every workflow loads whole, with no dialog)
// Writes <out dir>/missing_models.json ({workflow: {candidates, panel text, download buttons}}) and one screenshot per
// workflow (<out dir>/<workflow>.png, the errors panel open).
import fs from "node:fs";
import path from "node:path";
import { launchForHost } from "./launch.mjs";

const [url, dir, outDir, mode = "classic"] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const files = fs.readdirSync(dir).filter((f) => f.endsWith(".json")).sort();
const result = {};
let failed = false;
const { context, profile } = await launchForHost(url, { width: 1600, height: 1000 });
try {
    const page = context.pages()[0] || await context.newPage();
    await page.request.post(`${url}/settings`, { data: { "Comfy.TutorialCompleted": true,
        "Comfy.VueNodes.Enabled": mode === "vue" } }).catch(() => {});
    if (mode === "legacy") {  // the 2024 frontend: every workflow loads whole (properties.models is ignored there)
        await page.goto(url, { waitUntil: "domcontentloaded" });
        await page.waitForFunction(() => !!(window.app?.graph && window.LiteGraph?.registered_node_types?.InstanceDiffusionLayout),
                                   null, { timeout: 90000 });
        for (const file of files) {
            const wf = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"));
            const got = await page.evaluate(async (w) => {
                window.app.graph.clear();
                await window.app.loadGraphData(w);
                const nodes = window.app.graph._nodes;
                const dialog = [...document.querySelectorAll(".comfy-modal, .p-dialog")]
                    .filter((d) => d.offsetParent !== null).map((d) => d.innerText.slice(0, 300));
                return { nodes: nodes.length, unknown: nodes.filter((n) => !window.LiteGraph.registered_node_types[n.type])
                    .map((n) => n.type), dialog };
            }, wf);
            const ok = got.nodes === wf.nodes.length && !got.unknown.length && !got.dialog.length;
            failed ||= !ok;
            result[file] = { ok, ...got };
            console.log(ok ? "ok  " : "FAIL", file, `| ${got.nodes}/${wf.nodes.length} nodes`, got.dialog.join(" / "));
        }
        await page.screenshot({ path: path.join(outDir, "legacy_last_workflow.png") });
        fs.writeFileSync(path.join(outDir, "legacy_load.json"), JSON.stringify(result, null, 1));
    } else {
        // the Templates browser: this pack's cards, their titles (the file names) and thumbnails
        await page.goto(url, { waitUntil: "domcontentloaded" });
        await page.waitForFunction(() => !!(window.comfyAPI?.app?.app || window.app)?.extensionManager?.command, null,
                                   { timeout: 90000 });
        await page.waitForTimeout(3000);
        result.templates = { listed: await (await page.request.get(`${url}/api/workflow_templates`)).json() };
        const thumbs = new Set();
        page.on("response", (r) => { if (r.status() === 200 && /\/workflow_templates\/comfyui-instancediffusion\/.*\.jpg$/
            .test(decodeURIComponent(r.url()))) thumbs.add(r.url()); });
        await page.evaluate(() => (window.comfyAPI?.app?.app || window.app).extensionManager.command.execute("Comfy.BrowseTemplates"));
        await page.waitForTimeout(2000);
        await page.getByText("comfyui-instancediffusion", { exact: true }).first().click({ timeout: 5000 }).catch(() => {});
        await page.waitForTimeout(3000);
        result.templates.cards = await page.evaluate(() => [...document.querySelectorAll("h3")].map((h) => h.innerText)
            .filter((t) => t.endsWith("InstanceDiffusion")));
        // the 2026 frontend fetches thumbnails through its media cache and shows them as blob: URLs, so count the
        // pack's .jpg answers (200) and the loaded pictures inside its cards (by URL or blob:); both count only the
        // cards in view (the grid loads thumbnails lazily: 12 of 17 at 1600x1000)
        result.templates.thumbnailFetches = [...thumbs].length;
        result.templates.thumbnails = await page.evaluate(() => [...document.querySelectorAll("img")]
            .filter((i) => i.naturalWidth > 0 && (decodeURIComponent(i.currentSrc || i.src).includes("InstanceDiffusion.jpg")
                || ((i.currentSrc || i.src).startsWith("blob:") && [...(i.closest("div:has(h3)")?.querySelectorAll("h3") ?? [])]
                    .some((h) => h.innerText.endsWith("InstanceDiffusion")))))
            .length);
        await page.screenshot({ path: path.join(outDir, "templates_browser.png") });
        console.log("templates browser:", result.templates.cards.length, "cards,", result.templates.thumbnails, "thumbnails shown,",
                    result.templates.thumbnailFetches, "fetched");
        for (const file of files) {
            await page.goto(url, { waitUntil: "domcontentloaded" });
            await page.waitForFunction(() => {
                const a = window.comfyAPI?.app?.app || window.app;
                return !!(a && a.graph && a.canvas && window.LiteGraph?.registered_node_types?.InstanceDiffusionLayout);
            }, null, { timeout: 90000 });
            await page.waitForTimeout(3000);  // let the start-up (default) workflow finish loading first
            const text = fs.readFileSync(path.join(dir, file), "utf8");
            await page.evaluate(async ([name, body]) => {
                const app = window.comfyAPI?.app?.app || window.app;
                await app.handleFile(new File([body], name, { type: "application/json" }));
            }, [file, text]);
            const pinia = () => document.querySelector("#vue-app")?.__vue_app__?.config?.globalProperties?.$pinia;
            await page.waitForFunction((name) => {
                const p = document.querySelector("#vue-app")?.__vue_app__?.config?.globalProperties?.$pinia;
                return p?._s.get("workflow")?.activeWorkflow?.filename === name.replace(/\.json$/, "");
            }, file, { timeout: 20000 });
            await page.waitForTimeout(2500);  // the missing-model verification runs after the load
            const report = await page.evaluate(() => {
                const p = document.querySelector("#vue-app")?.__vue_app__?.config?.globalProperties?.$pinia;
                const store = p?._s.get("missingModel");
                const keep = ({ nodeType, widgetName, name, directory, url, isMissing }) =>
                    ({ nodeType, widgetName, name, directory, url, isMissing });
                return { active: p?._s.get("workflow")?.activeWorkflow?.filename,
                         candidates: (store?.missingModelCandidates ?? []).map(keep) };
            });
            const details = page.getByRole("button", { name: /view details/i }).first();
            report.overlay = await page.getByText(/issues? found/i).first().innerText().catch(() => "");
            if (await details.count()) await details.click({ timeout: 3000 }).catch(() => {});
            await page.waitForTimeout(1500);
            const downloads = await page.locator("button, a").filter({ hasText: /download/i }).allInnerTexts();
            const panel = await page.evaluate(() => {  // the smallest element holding the Missing Models group
                const hits = [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().width > 0
                    && /Missing Models/.test(e.innerText || "") && /Download all|Download/.test(e.innerText || ""));
                return hits.sort((a, b) => a.innerText.length - b.innerText.length)[0]?.innerText ?? "";
            });
            // what the workflow offers: the properties.models entries of its nodes whose file the host lacks
            const wf = JSON.parse(text);
            const offered = [...new Set(wf.nodes.flatMap((n) => (n.properties?.models ?? []).map((m) => m.name)))];
            const buttons = downloads.filter((t) => /^\s*download\s*$/i.test(t)).length;
            const ok = offered.every((n) => panel.includes(n)) && buttons === offered.length
                && report.candidates.filter((c) => c.isMissing && c.url).length === offered.length;
            failed ||= !ok;
            const stem = file.replace(/\.json$/, "");
            await page.screenshot({ path: path.join(outDir, `${stem}.png`) });
            result[stem] = { ok, offered, ...report, downloads, panel };
            fs.writeFileSync(path.join(outDir, "missing_models.json"), JSON.stringify(result, null, 1));
            console.log(ok ? "ok  " : "FAIL", stem, "| offered:", offered.join(", "), "| download buttons:", buttons,
                        "| missing without a download:", report.candidates.filter((c) => !c.url).map((c) => c.name).join(", "));
        }
    }
} finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
