"""Benchmark sections 5 and 6: memory of a patched model in fresh processes, and the converter's peak memory."""
import gc
import json
import subprocess
import sys

from bench.common import (GiB, MiB, REPO, build_instdiff, build_unet_model, caption_conds, conditioning, make_grounding,
                          make_layout, peak_rss_bytes, rss_bytes, text_cond)
from bench.report import Report

REAL_CHECKPOINT_BYTES = 13.6e9  # instancediffusion_sd15.pth


# ----------------------------------------------------------------------------------------------- section 5
def child_memory(m, mode: str, cfg_json: str):
    """Runs in a fresh process; prints one JSON line."""
    import torch
    cfg = json.loads(cfg_json)
    out = {"mode": mode}
    cuda = m.device.type == "cuda"
    if mode in ("plain", "patched"):
        model = build_unet_model(m, 320)
        latent = torch.zeros(1, 4, cfg["h"], cfg["w"])
        if mode == "patched":
            instdiff = build_instdiff(m, 320)
            lay = make_layout(m, 10, "mixed", cfg["w"] * 8, cfg["h"] * 8)
            g = make_grounding(m, instdiff, lay)
            model = m.patch.apply_patches(model, instdiff, conditioning(m, g), 1.0, 0.0, True, True)
            out["instdiff_bytes"] = sum(p.numel() * p.element_size() for p in instdiff.parameters())
        import comfy.sample
        noise = comfy.sample.prepare_noise(latent, 0)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        comfy.sample.sample(model, noise, 1, 7.0, "euler", "normal", text_cond(1), text_cond(2), latent,
                            disable_pbar=True, seed=0)
        gc.collect()
        out.update(rss=rss_bytes(), peak=peak_rss_bytes())
        if cuda:
            out.update(cuda_alloc=torch.cuda.memory_allocated(), cuda_peak=torch.cuda.max_memory_allocated())
    else:  # growth: 10 consecutive whole runs (tokenizer + apply + MIS sampler with masked attention)
        model = build_unet_model(m, cfg["tiny"])
        instdiff = build_instdiff(m, cfg["tiny"])
        lay = make_layout(m, 3, "all", 128, 128)
        latent = {"samples": torch.zeros(1, 4, 16, 16)}
        node = m.sampler.InstanceDiffusionKSampler()
        series, cuda_series = [], []
        for i in range(10):
            g = make_grounding(m, instdiff, lay, seed=0)
            patched = m.patch.apply_patches(model, instdiff, conditioning(m, g, caption_conds(lay)), 1.0, 0.0, True, True)
            node.sample(patched, i, 4, 7.0, "euler", "normal", text_cond(1), text_cond(2), latent, 1.0, 0.5, 0)
            del patched, g
            gc.collect()
            series.append(rss_bytes())
            if cuda:
                cuda_series.append(torch.cuda.memory_allocated())
        out.update(series=series, cuda_series=cuda_series)
    print("CHILD_RESULT " + json.dumps(out), flush=True)


def run_child(args, mode, cfg_json):
    cmd = [sys.executable, str(REPO / "bench" / "run.py"), "--device", args.device, "--threads", str(args.threads), "--child", mode,
           "--child-cfg", cfg_json]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    for line in proc.stdout.splitlines():
        if line.startswith("CHILD_RESULT "):
            return json.loads(line[len("CHILD_RESULT "):])
    raise RuntimeError(f"memory child {mode} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def section5(m, cfg, rep: Report, args):
    print("[5] memory (child processes)", flush=True)
    h, w = cfg.mem_latent
    cj = json.dumps({"h": h, "w": w, "tiny": cfg.tiny_channels})
    plain = run_child(args, "plain", cj)
    patched = run_child(args, "patched", cj)
    growth = run_child(args, "growth", cj)
    extra = patched["rss"] - plain["rss"]
    extra_peak = patched["peak"] - plain["peak"]
    wbytes = patched["instdiff_bytes"]
    rep.detail(5, f"Fresh processes, full-size SD1.5 UNet (random weights, fp32), one 1-step euler sampling run at latent "
                  f"{h}x{w} through `comfy.sample.sample`; patched = + InstanceDiffusionModel (fp32, "
                  f"{wbytes / GiB:.2f} GiB of parameters) + 10-instance grounding, ScaleU and masked attention. RSS "
                  f"after the run (after gc) and peak RSS (ru_maxrss).")
    rep.table(5, "process", "RSS after run GiB", "peak RSS GiB")
    for name, rss, peak in (("plain", plain["rss"], plain["peak"]), ("patched", patched["rss"], patched["peak"]),
                            ("extra", extra, extra_peak)):
        rep.table_row(5, name, f"{rss / GiB:.2f}", f"{peak / GiB:.2f}")
    if "cuda_alloc" in plain:
        rep.table_row(5, "CUDA allocated plain / patched GiB",
                      f"{plain['cuda_alloc'] / GiB:.2f} / {patched['cuda_alloc'] / GiB:.2f}",
                      f"peak {plain['cuda_peak'] / GiB:.2f} / {patched['cuda_peak'] / GiB:.2f}")
    # the peak of both processes can come from building the UNet (randn temporaries), so the peak difference
    # alone may understate; the check uses the larger of the two differences
    worst = max(extra, extra_peak)
    ratio = worst / wbytes
    rep.row(5, "extra RSS of the patched model over plain (max of after-run and peak differences)",
            f"<= 1.25 x InstanceDiffusion weights ({1.25 * wbytes / GiB:.2f} GiB)",
            f"{worst / GiB:.2f} GiB = {ratio:.2f} x weights (after run {extra / GiB:.2f}, peak "
            f"{extra_peak / GiB:+.2f} GiB)", ratio <= 1.25)
    s = growth["series"]
    grow = s[-1] - s[0]
    noise = max(32 * MiB, 0.02 * s[0])
    rep.detail(5, "")
    rep.detail(5, f"Growth: 10 consecutive whole runs in one process (tiny UNet model_channels {cfg.tiny_channels}; "
                  f"each run, 128x128: tokenizer `build_grounding` + `apply_patches` + InstanceDiffusionKSampler, mis 0.5, 4 "
                  f"steps, masked attention, ScaleU), RSS after each run (MiB): "
                  + ", ".join(f"{v / MiB:.0f}" for v in s))
    if growth.get("cuda_series"):
        rep.detail(5, "CUDA allocated after each run (MiB): " + ", ".join(f"{v / MiB:.0f}" for v in growth["cuda_series"]))
    rep.row(5, "RSS after 10 runs - after 1 run", f"<= {noise / MiB:.0f} MiB (max(32 MiB, 2% of RSS))",
            f"{grow / MiB:+.0f} MiB", grow <= noise)


# ----------------------------------------------------------------------------------------------- section 6
def section6(m, cfg, rep: Report):
    import re
    print("[6] converter peak memory (bench/convert_memory.py)", flush=True)
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "convert_memory.py"), "--dtype", "fp16"],
                          capture_output=True, text=True, cwd=REPO)
    text = proc.stdout + proc.stderr
    size = re.search(r"synthetic checkpoint ([\d.]+) GiB", text)
    peak = re.search(r"converter peak RSS ([\d.]+) GiB = ([\d.]+) x file size", text)
    if proc.returncode != 0 or not (size and peak):
        rep.row(6, "convert_memory.py", "runs", "failed: " + text[-300:].replace("\n", " "), False)
        return
    size_gib, peak_gib, ratio = float(size.group(1)), float(peak.group(1)), float(peak.group(2))
    est = ratio * REAL_CHECKPOINT_BYTES
    rep.detail(6, f"`bench/convert_memory.py --dtype fp16`: a synthetic official-layout .pth ({size_gib:.2f} GiB: "
                  f"'model' and 'ema' with the 513 added keys at real shapes plus the base UNet keys, Adam-like state) "
                  f"converted by `python -m instdiff_model.convert` in a child process; peak RSS = ru_maxrss of that "
                  f"child. Extrapolation: peak/size x 13.6 GB (the real instancediffusion_sd15.pth).")
    rep.detail(6, "")
    rep.detail(6, "```")
    rep.detail(6, text.strip()[-800:])
    rep.detail(6, "```")
    rep.row(6, "converter peak RSS, extrapolated to the 13.6 GB file", "<= 3 GB",
            f"{est / 1e9:.2f} GB ({peak_gib:.2f} GiB for {size_gib:.2f} GiB = {ratio:.3f} x size)", est <= 3e9)
