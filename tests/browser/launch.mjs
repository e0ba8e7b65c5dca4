// Debian chromium through playwright-core, offline: a fresh profile, only the host's own URLs reachable.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export async function launchForHost(url, viewport) {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), "instdiff-chromium-"));
    const context = await chromium.launchPersistentContext(profile, {
        executablePath: process.env.INSTDIFF_CHROMIUM || "/usr/bin/chromium",
        headless: true,
        viewport,
        args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
    });
    const origin = new URL(url).origin;
    await context.route("**/*", (route) => (route.request().url().startsWith(origin) ? route.continue() : route.abort()));
    return { context, profile };
}
