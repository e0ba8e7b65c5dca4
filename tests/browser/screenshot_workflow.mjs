// Screenshot of a shipped workflow in the host's UI, for the README:
//   node screenshot_workflow.mjs <host url> <workflow.json> <out.png>
import fs from "node:fs";
import { launchForHost } from "./launch.mjs";

const [url, workflowPath, outPng] = process.argv.slice(2);
const workflow = JSON.parse(fs.readFileSync(workflowPath, "utf8"));
const { context, profile } = await launchForHost(url, { width: 1900, height: 1050 });
try {
    const page = context.pages()[0] || await context.newPage();
    await page.request.post(`${url}/settings`, { data: { "Comfy.TutorialCompleted": true } }).catch(() => {});
    await page.goto(url, { waitUntil: "domcontentloaded" });
    await page.waitForFunction(() => {
        const a = window.comfyAPI?.app?.app || window.app;
        return !!(a && a.graph && a.canvas && window.LiteGraph?.registered_node_types?.InstanceDiffusionLayout);
    }, null, { timeout: 60000 });
    await page.evaluate(async (wf) => {
        const app = window.comfyAPI?.app?.app || window.app;
        app.graph.clear();
        await app.loadGraphData(wf);
        app.canvas.ds.scale = 0.62;
        app.canvas.ds.offset = [20, 200];
        app.graph.setDirtyCanvas(true, true);
    }, workflow);
    await page.waitForTimeout(1500);
    await page.screenshot({ path: outPng });
} finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
}
