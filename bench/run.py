#!/usr/bin/env python
"""InstanceDiffusion node-pack benchmark (issue 9): tokenizer cost, per-UNet-call overhead vs a FLOP bound,
the per-call-tokenizer (logtd) design as a baseline, MIS cost, memory, and converter peak memory.

Usage: .venv/bin/python bench/run.py [--quick] [--device cpu|cuda] [--sections 1,2,3,4,5,6] [--out FILE]
Prints a table and writes bench/RESULTS.md (machine, then per section: target, measured value, pass/fail).
Everything runs on random weights (the host's own SD1.5 UNet class, our InstanceDiffusionModel): the speed of
a matmul does not depend on the values.
"""
import argparse
import gc
import importlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GiB = 2 ** 30
MiB = 2 ** 20
REAL_CHECKPOINT_BYTES = 13.6e9  # instancediffusion_sd15.pth
FORMATS = ("boxes", "points", "scribbles", "polygons", "masks")


# ----------------------------------------------------------------------------------------------- host setup
def setup(device: str):
    """Import the host (CPU or CUDA mode) and this pack; returns a namespace of the pack's modules."""
    from scripts.hostenv import host_dir
    host = str(host_dir())
    if host not in sys.path:
        sys.path.insert(0, host)
    import comfy.cli_args
    comfy.cli_args.args.cpu = device == "cpu"
    comfy.cli_args.args.use_pytorch_cross_attention = True
    import torch
    torch.set_grad_enabled(False)
    import comfy.model_management  # noqa: F401  (chooses the device from args.cpu, once, at import)
    from scripts.hostenv import import_pack
    pack = import_pack()  # import_host() sets args.cpu again; the device was already chosen above
    comfy.cli_args.args.cpu = device == "cpu"

    class M:
        pass
    m = M()
    for short, name in [("patch", "nodes.patch"), ("sampler", "nodes.sampler"),
                        ("grounding", "instdiff_model.grounding"), ("model", "instdiff_model.model"),
                        ("layout", "instdiff_model.layout"), ("preprocess", "instdiff_model.preprocess"),
                        ("tokenizer", "instdiff_model.tokenizer"), ("blocks", "instdiff_model.blocks"),
                        ("mis", "instdiff_model.mis")]:
        setattr(m, short, importlib.import_module(pack.__name__ + "." + name))
    m.rm = importlib.import_module("scripts.random_models")
    m.device = torch.device(device)
    return m


def sync(device):
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(m, fn):
    sync(m.device)
    t = time.perf_counter()
    out = fn()
    sync(m.device)
    return time.perf_counter() - t, out


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ----------------------------------------------------------------------------------------------- builders
def build_instdiff(m, model_channels: int, seed: int = 0):
    """InstanceDiffusionModel at a UNet width with seeded random weights (randn*0.02, gates non-zero)."""
    model = m.model.InstanceDiffusionModel(model_channels)
    m.rm.randomize_(model, seed)
    return model.eval().requires_grad_(False).to(m.device)


def build_unet_model(m, model_channels: int, seed: int = 0):
    model = m.rm.random_sd15_model(seed, model_channels)
    model.model.diffusion_model.to(m.device)
    return model


def make_layout(m, n: int, fmt: str, width: int = 512, height: int = 512):
    """n instances on a grid; fmt one of FORMATS, or 'all' (every instance has all five), or 'mixed' (cycled)."""
    import numpy as np
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    cw, ch = width / cols, height / rows
    insts = []
    for i in range(n):
        x0, y0 = (i % cols) * cw, (i // cols) * ch
        bx, by, bw, bh = x0 + 0.15 * cw, y0 + 0.15 * ch, 0.7 * cw, 0.7 * ch
        kinds = FORMATS if fmt == "all" else (FORMATS[i % len(FORMATS)],) if fmt == "mixed" else (fmt,)
        kw = {}
        if "boxes" in kinds:
            kw["box"] = (bx, by, bw, bh)
        if "points" in kinds:
            kw["point"] = (bx + bw / 2, by + bh / 2)
        if "scribbles" in kinds:
            kw["scribble"] = [[(bx + t * bw, by + bh * (0.5 + 0.3 * math.sin(6 * t))) for t in np.linspace(0, 1, 12)]]
        if "polygons" in kinds:
            kw["polygon"] = [[(bx, by + bh), (bx + bw / 2, by), (bx + bw, by + bh), (bx + bw * 0.5, by + bh * 0.7)]]
        if "masks" in kinds:
            yy, xx = np.mgrid[0:height, 0:width]
            kw["mask"] = ((xx - (bx + bw / 2)) / (bw / 2)) ** 2 + ((yy - (by + bh / 2)) / (bh / 2)) ** 2 <= 1
        insts.append(m.layout.Instance(caption=f"object {i}", **kw))
    return m.layout.Layout(width=width, height=height, caption="a benchmark scene", instances=insts)


def phrase_embeddings(n: int, seed: int = 0):
    import torch
    return torch.randn(n, 768, generator=torch.Generator().manual_seed(seed))


def make_grounding(m, instdiff, layout, drop=None, seed=0):
    import torch
    drop = drop or m.tokenizer.choose_drop_config(layout)
    g = m.grounding.build_grounding(instdiff.position_net, [layout], [phrase_embeddings(len(layout.instances), seed)],
                                    drop, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    g.instance_conds = [torch.randn(1, 77, 768, generator=gen) for _ in layout.instances]
    return g


def text_cond(seed):
    import torch
    return [[torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(seed)), {}]]


# ----------------------------------------------------------------------------------------------- results
class Report:
    def __init__(self):
        self.rows = []      # (section, item, target, measured, ok)
        self.details = {}   # section -> list of markdown lines
        self.notes = {}

    def row(self, section, item, target, measured, ok=None):
        self.rows.append((section, item, target, measured, ok))
        status = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"  [{section}] {item}: {measured}   (target {target}) {status}", flush=True)

    def detail(self, section, line):
        self.details.setdefault(section, []).append(line)


SECTION_TITLES = {
    1: "Instance tokenizer (position net): cost, and once per sampling run",
    2: "Time per UNet call, patched / plain, vs the FLOP bound",
    3: "Baseline: position net re-run in every fuser call (logtd design)",
    4: "Multi-instance sampler (MIS)",
    5: "Memory",
    6: "Converting an official-layout .pth",
}


# ----------------------------------------------------------------------------------------------- section 1
def section1(m, cfg, rep: Report, tiny):
    import torch
    print("[1] tokenizer cost", flush=True)
    big = tiny["instdiff"]  # the position net is full size at every UNet width
    net = big.position_net
    counts = (1, 10, 30)
    fmts = FORMATS + ("all",)
    reps = cfg.reps1
    rep.detail(1, "Cost of one Instance Tokenizer run for one 512x512 layout frame (median of "
                  f"{reps}): preprocessing (layout -> official inputs: mask resizing, polygon/scribble sampling), "
                  "the position-net forward on the frame, and the whole `build_grounding` (preprocess + frame "
                  "forward + null-token forward + regions). Drop config: `auto` for the formats present "
                  "(`all` = every instance has box, point, scribble, polygon and mask -> `scribble` config, "
                  "which keeps every token group).")
    rep.detail(1, "")
    rep.detail(1, "| instances | formats | drop config | preprocess s | position-net forward s | build_grounding s |")
    rep.detail(1, "|---|---|---|---|---|---|")
    # warm-up
    lay = make_layout(m, 1, "masks")
    make_grounding(m, big, lay)
    worst = 0.0
    for n in counts:
        for fmt in fmts:
            lay = make_layout(m, n, fmt)
            drop = m.tokenizer.choose_drop_config(lay)
            emb = phrase_embeddings(n)
            pre, fwd, tot = [], [], []
            make_grounding(m, big, lay, drop)  # warm-up for this shape
            for _ in range(reps):
                t, inputs = timed(m, lambda: m.preprocess.layout_to_grounding_inputs(lay, emb, 0))
                pre.append(t)
                batch = {k: v.to(m.device) for k, v in inputs.items()}
                fwd.append(timed(m, lambda: net(**batch, drop=drop))[0])
                tot.append(timed(m, lambda: make_grounding(m, big, lay, drop))[0])
            worst = max(worst, med(tot))
            rep.detail(1, f"| {n} | {fmt} | {drop} | {med(pre):.3f} | {med(fwd):.3f} | {med(tot):.3f} |")
            print(f"    n={n:2d} {fmt:9s} {drop:8s} pre {med(pre):.3f}s fwd {med(fwd):.3f}s total {med(tot):.3f}s",
                  flush=True)
    rep.row(1, "tokenizer, worst case over 1/10/30 instances x all formats (build_grounding)",
            "reported (runs once per run)", f"{worst:.2f} s")

    # --- position-net forward calls during sampling runs of different lengths
    counter = {"n": 0}
    orig = net.forward

    def counting(*a, **k):
        counter["n"] += 1
        return orig(*a, **k)
    net.forward = counting
    try:
        model = tiny["unet"]
        lay = make_layout(m, 3, "all", 128, 128)
        latent = torch.zeros(1, 4, 16, 16)
        results = {}
        for mode in ("KSampler", "MIS"):
            for steps in cfg.count_steps:
                counter["n"] = 0
                g = make_grounding(m, big, lay)
                patched = m.patch.apply_patches(model, big, g, 1.0, 0.0, True, True)
                tok_calls = counter["n"]
                counter["n"] = 0
                if mode == "KSampler":
                    import comfy.sample
                    noise = comfy.sample.prepare_noise(latent, 0)
                    comfy.sample.sample(patched, noise, steps, 7.0, "euler", "normal", text_cond(1), text_cond(2),
                                        latent, disable_pbar=True, seed=0)
                else:
                    m.sampler.InstanceDiffusionKSampler().sample(patched, 0, steps, 7.0, "euler", "normal",
                                                                 text_cond(1), text_cond(2), {"samples": latent},
                                                                 1.0, 0.5, 0)
                results[(mode, steps)] = (tok_calls, counter["n"])
    finally:
        net.forward = orig
    rep.detail(1, "")
    rep.detail(1, "Position-net forward calls (counted by wrapping `position_net.forward`), tiny UNet "
                  f"(model_channels {cfg.tiny_channels}), 3 instances with all formats, 128x128, masked attention "
                  "and ScaleU on; the KSampler is the host's `comfy.sample.sample`, MIS is our "
                  "InstanceDiffusionKSampler with mis=0.5 (3 instances: 3 single-instance groundings):")
    rep.detail(1, "")
    rep.detail(1, "| sampler | steps | calls in tokenizer node | calls during sampling |")
    rep.detail(1, "|---|---|---|---|")
    for (mode, steps), (a, b) in results.items():
        rep.detail(1, f"| {mode} | {steps} | {a} | {b} |")
    for mode in ("KSampler", "MIS"):
        during = [results[(mode, s)][1] for s in cfg.count_steps]
        ok = len(set(during)) == 1
        rep.row(1, f"position-net calls during a {mode} run, steps {'/'.join(map(str, cfg.count_steps))}",
                "independent of steps", "/".join(map(str, during)), ok)


# ----------------------------------------------------------------------------------------------- FLOPs
def fuser_flops(c: int, n: int, b: int, m_tokens: int = 184, ctx: int = 768) -> int:
    """Multiply-adds x2 of one GatedSelfAttentionDense call, as implemented (attention over N+184 tokens)."""
    t = n + m_tokens
    linear = 2 * b * m_tokens * ctx * c
    qkv = 3 * 2 * b * t * c * c
    attn = 2 * 2 * b * t * t * c          # QK^T and AV
    out = 2 * b * t * c * c               # to_out over all N+184 rows (sliced after)
    ff = 2 * b * n * (c * 8 * c + 4 * c * c)  # GEGLU proj C->8C, then 4C->C
    return linear + qkv + attn + out + ff


def fuser_level_list(m, h: int, w: int, model_channels: int = 320):
    """[(channels, visual tokens)] of the 16 fusers for a latent h x w."""
    out = []
    for name, c in m.blocks.FUSER_BLOCKS:
        level = {320: 0, 640: 1, 1280: 2}[c]
        if name.startswith("input_blocks.7") or name.startswith("input_blocks.8") or name.startswith("middle") \
                or name in ("output_blocks.3.1", "output_blocks.4.1", "output_blocks.5.1"):
            level = 2
        hh, ww = -(-h // 2 ** level), -(-w // 2 ** level)
        out.append((c * model_channels // 320, hh * ww))
    return out


def counted_flops(m, h, w, batch, model_channels=320):
    """FlopCounterMode totals of one plain UNet forward and of the 16 fusers, on meta tensors (no compute)."""
    import comfy.supported_models
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    with torch.device("meta"):
        unet = comfy.supported_models.SD15(m.rm.sd15_unet_config(model_channels)).get_model({}).diffusion_model
        inst = m.model.InstanceDiffusionModel(model_channels)
    x = torch.empty(batch, 4, h, w, device="meta")
    fc = FlopCounterMode(display=False)
    with fc:
        unet(x, timesteps=torch.empty(batch, device="meta"), context=torch.empty(batch, 77, 768, device="meta"),
             transformer_options={"cond_or_uncond": [1, 0]})
    unet_flops = fc.get_total_flops()
    fc = FlopCounterMode(display=False)
    with fc:
        for i, (c, n) in enumerate(fuser_level_list(m, h, w, model_channels)):
            inst.fusers[i](torch.empty(batch, n, c, device="meta"), torch.empty(batch, 184, 768, device="meta"))
    return unet_flops, fc.get_total_flops()


# ----------------------------------------------------------------------------------------------- section 2 / 3
class TimedPatch:
    """Wraps a patch object; accumulates the wall time spent inside it (synchronised on CUDA)."""

    def __init__(self, inner, device, clock):
        self.inner, self.device, self.clock = inner, device, clock

    def __call__(self, *a):
        sync(self.device)
        t = time.perf_counter()
        out = self.inner(*a)
        sync(self.device)
        self.clock[type(self.inner).__name__] = self.clock.get(type(self.inner).__name__, 0.0) + time.perf_counter() - t
        return out

    def to(self, device):
        return self


class PerCallTokenizerPatch:
    """The baseline: like the logtd pack's first design, run the position net in every fuser call (16 per UNet call)
    on the cond layout inputs and the null inputs, then the fuser. No token cache, no masked attention."""

    def __init__(self, m, instdiff, inputs, drop):
        self.m, self.instdiff, self.drop = m, instdiff, drop
        null = m.preprocess.null_grounding_inputs(1)
        self.inputs = {k: v.to(m.device) for k, v in inputs.items()}
        self.null = {k: v.to(m.device) for k, v in null.items()}

    def __call__(self, x, extra_options):
        import torch
        chunks = extra_options["cond_or_uncond"]
        per = x.shape[0] // len(chunks)
        batch = {k: torch.cat([(self.inputs if c == 0 else self.null)[k].expand(per, *self.null[k].shape[1:])
                               for c in chunks]) for k in self.null}
        objs = self.instdiff.position_net(**batch, drop=self.drop)[0]
        fuser = self.instdiff.fusers[extra_options["transformer_index"]]
        return fuser(x, objs.to(x.dtype), 1.0, None)


def unet_options(m, base_model, instdiff, grounding, config: str, clock, baseline_inputs=None):
    """transformer_options for one configuration (patch objects from the pack's own apply_patches)."""
    opts = {}
    if config == "plain":
        return opts
    masked = config == "fusers+scaleu+masked"
    scaleu = config != "fusers"
    if config == "baseline":
        patches = {"middle_patch": [PerCallTokenizerPatch(m, instdiff, baseline_inputs, grounding.drop)],
                   "output_block_patch": [m.patch.ScaleUPatch(instdiff)]}
    else:
        patched = m.patch.apply_patches(base_model, instdiff, grounding, 1.0, 0.0, scaleu, masked)
        patches = patched.model_options["transformer_options"]["patches"]
    opts["patches"] = {k: [TimedPatch(p, m.device, clock) for p in v] for k, v in patches.items()}
    return opts


def warm_caches(m, opts, h, w):
    """Fill a FuserPatch's per-run caches (tokens per chunk kind; masks per token grid) as its first call does."""
    import torch
    for wrapped in opts.get("patches", {}).get("middle_patch", []):
        p = wrapped.inner
        if not isinstance(p, m.patch.FuserPatch):
            continue
        for kind in ("cond", "uncond"):
            p._per_chunk(kind, 1, m.device, torch.float32)
        if p.masked_attention:
            for level in range(3):
                p._mask([1, 0], 1, -(-h // 2 ** level), -(-w // 2 ** level), m.device, torch.float32)


def unet_call(m, unet, x, ctx, ts, sigmas, opts):
    options = dict(opts, cond_or_uncond=[1, 0], sigmas=sigmas)
    return unet(x, timesteps=ts, context=ctx, transformer_options=options)


def section2_3(m, cfg, rep: Report, big, do2: bool, do3: bool):
    import torch
    unet = big["unet"].model.diffusion_model
    instdiff = big["instdiff"]
    configs = (["plain"] + (["fusers"] if cfg.fusers_alone else []) + ["fusers+scaleu", "fusers+scaleu+masked"]
               if do2 else ["plain", "fusers+scaleu"])
    ours_for_baseline = {}
    if do2:
        rep.detail(2, f"Full-size SD1.5 UNet (model_channels 320, random weights), batch 2 (cond_or_uncond [1, 0]), "
                      f"called directly with the pack's patch objects (from `apply_patches`, gate 1.0); layout: 10 "
                      f"instances, formats cycled (boxes, points, scribbles, polygons, masks), `auto` drop config. "
                      f"`measured` = median(patched) / median(plain) over {cfg.reps2} interleaved repeat(s); "
                      f"`in-call` = call time / (call time - time inside our patches), from the same calls "
                      f"(immune to load changes between calls). FLOP bound = 1 + fuser FLOPs / plain UNet FLOPs, "
                      f"both from torch.utils.flop_counter on meta tensors (fuser FLOPs cross-checked against the "
                      f"closed form: linear(objs), q/k/v, attention over N+184 tokens, out proj, GEGLU FF).")
        rep.detail(2, "")
        rep.detail(2, "| latent (image) | config | plain s | patched s | measured ratio | in-call ratio | "
                      "fuser s/call | ScaleU s/call | FLOP bound | 1.05 x bound |")
        rep.detail(2, "|---|---|---|---|---|---|---|---|---|---|")
    for (h, w), reps in zip(cfg.res2, cfg.reps2_per_res):
        unet_flops, fus_flops = counted_flops(m, h, w, 2)
        closed = sum(fuser_flops(c, n, 2) for c, n in fuser_level_list(m, h, w))
        bound = 1 + fus_flops / unet_flops
        print(f"[2] latent {h}x{w}: UNet {unet_flops / 1e9:.0f} GFLOP, fusers {fus_flops / 1e9:.0f} GFLOP "
              f"(closed form {closed / 1e9:.0f}), bound {bound:.3f}", flush=True)
        lay = make_layout(m, 10, "mixed", w * 8, h * 8)
        g = make_grounding(m, instdiff, lay)
        gen = torch.Generator().manual_seed(3)
        x = torch.randn(2, 4, h, w, generator=gen).to(m.device)
        ctx = torch.randn(2, 77, 768, generator=gen).to(m.device)
        ts = torch.tensor([500.0, 500.0], device=m.device)
        sigmas = torch.tensor([1.0, 1.0], device=m.device)
        clocks = {c: {} for c in configs}
        opts = {c: unet_options(m, big["unet"], instdiff, g, c, clocks[c]) for c in configs}
        # warm-up: on CUDA one call per configuration; on CPU (calls of tens of seconds) only the per-run caches
        # that a sampling run fills on its first step: the token batches and the attention masks per level
        for c in configs[1:]:
            if cfg.warmup2:
                unet_call(m, unet, x, ctx, ts, sigmas, opts[c])
            else:
                warm_caches(m, opts[c], h, w)
        for c in configs:
            clocks[c].clear()
        times = {c: [] for c in configs}
        incall = {c: [] for c in configs}
        for r in range(reps):
            order = configs if r % 2 == 0 else configs[::-1]
            for c in order:
                before = dict(clocks[c])
                t, _ = timed(m, lambda: unet_call(m, unet, x, ctx, ts, sigmas, opts[c]))
                spent = {k: v - before.get(k, 0.0) for k, v in clocks[c].items()}
                inside = sum(spent.values())
                times[c].append(t)
                incall[c].append((t, spent.get("FuserPatch", 0.0), spent.get("ScaleUPatch", 0.0), t / (t - inside)))
                print(f"    rep {r} {c:22s} {t:7.2f} s  (fusers {spent.get('FuserPatch', 0):.2f}, "
                      f"scaleu {spent.get('ScaleUPatch', 0):.2f})", flush=True)
        plain = med(times["plain"])
        rows = list(configs[1:])
        if "fusers" not in configs and do2:
            rows.insert(0, "fusers")  # in-call only: from the fusers+scaleu calls, without the ScaleU time
            incall["fusers"] = [(t - ss_, fs_, 0.0, (t - ss_) / (t - fs_ - ss_)) for t, fs_, ss_, _ in
                                incall["fusers+scaleu"]]
        for c in rows:
            direct = c in times
            ratio = med(times[c]) / plain if direct else float("nan")
            ic = med([v[3] for v in incall[c]])
            fs = med([v[1] for v in incall[c]])
            ss = med([v[2] for v in incall[c]])
            key = f"{h}x{w} ({w * 8}x{h * 8} px)"
            if c == "fusers+scaleu":
                ours_for_baseline[(h, w)] = (med(times[c]), fs, ss)
            if do2:
                patched_s = f"{med(times[c]):.2f}" if direct else "(from fusers+scaleu)"
                ratio_s = f"{ratio:.3f}" if direct else "-"
                rep.detail(2, f"| {key} | {c} | {plain:.2f} | {patched_s} | {ratio_s} | {ic:.3f} | "
                              f"{fs:.2f} | {ss:.2f} | {bound:.3f} | {1.05 * bound:.3f} |")
                rep.row(2, f"{c}, latent {h}x{w}", f"<= {1.05 * bound:.3f} (1.05 x FLOP bound {bound:.3f})",
                        f"in-call {ic:.3f} (direct {ratio_s})", ic <= 1.05 * bound)
        if do3 and (h, w) == cfg.res3:
            section3(m, cfg, rep, big, g, lay, (x, ctx, ts, sigmas), ours_for_baseline[(h, w)], plain)


def section3(m, cfg, rep, big, g, lay, call_inputs, ours, plain):
    unet = big["unet"].model.diffusion_model
    instdiff = big["instdiff"]
    x, ctx, ts, sigmas = call_inputs
    h, w = x.shape[-2:]
    print(f"[3] baseline (position net in every fuser call), latent {h}x{w}", flush=True)
    inputs = m.preprocess.layout_to_grounding_inputs(lay, phrase_embeddings(len(lay.instances)), 0)
    clock = {}
    opts = unet_options(m, big["unet"], instdiff, g, "baseline", clock, inputs)
    calls = {"n": 0}
    orig = instdiff.position_net.forward

    def counting(*a, **k):
        calls["n"] += 1
        return orig(*a, **k)
    instdiff.position_net.forward = counting
    try:
        times = []
        for _ in range(cfg.reps3):
            times.append(timed(m, lambda: unet_call(m, unet, x, ctx, ts, sigmas, opts))[0])
            print(f"    baseline {times[-1]:.2f} s", flush=True)
    finally:
        instdiff.position_net.forward = orig
    per_call = calls["n"] // cfg.reps3
    base = med(times)
    speedup = base / ours[0]
    inside = clock.get("PerCallTokenizerPatch", 0.0) / cfg.reps3
    base_scaleu = clock.get("ScaleUPatch", 0.0) / cfg.reps3
    rest = base - inside - base_scaleu  # the plain-UNet part of the baseline calls
    speedup_ic = base / (rest + ours[1] + ours[2])
    # in-call estimate: our call with the baseline's extra time inside the fuser patch (same-call ratios)
    rep.detail(3, f"Same full-size UNet, latent {h}x{w}, batch 2 (cond + uncond), the 10-instance mixed layout "
                  f"(`{g.drop}` config), ScaleU on in both. The baseline patch re-runs the position net on "
                  f"[cond inputs, null inputs] in every fuser call: {per_call} position-net forwards per UNet call "
                  f"(counted). Ours: tokens computed once by the tokenizer node, cached per (chunk kind, batch, "
                  f"device, dtype). Median of {cfg.reps3} baseline call(s) vs the fusers+scaleu median of section 2.")
    rep.detail(3, "")
    rep.detail(3, "| | s / UNet call | time inside the fuser patch s |")
    rep.detail(3, "|---|---|---|")
    rep.detail(3, f"| plain UNet | {plain:.2f} | - |")
    rep.detail(3, f"| ours (fusers + ScaleU) | {ours[0]:.2f} | {ours[1]:.2f} |")
    rep.detail(3, f"| baseline (per-call position net + ScaleU) | {base:.2f} | {inside:.2f} |")
    rep.detail(3, "")
    rep.detail(3, f"In-call estimate: baseline call / (its plain-UNet part {rest:.2f} s + our fuser and ScaleU patch time "
                  f"{ours[1] + ours[2]:.2f} s) = {speedup_ic:.2f}x; direct ratio of medians = {speedup:.2f}x.")
    rep.row(3, f"baseline s/step / ours s/step, latent {h}x{w}", ">= 2.0",
            f"in-call {speedup_ic:.2f}x (direct {speedup:.2f}x)", speedup_ic >= 2.0)
    rep.row(3, "position-net forwards per UNet call: baseline / ours", "16 / 0", f"{per_call} / 0", per_call == 16)


# ----------------------------------------------------------------------------------------------- section 4
def section4(m, cfg, rep: Report, tiny):
    import comfy.sample  # noqa: F401
    import torch
    print("[4] MIS", flush=True)
    model, instdiff = tiny["unet"], tiny["instdiff"]
    n, steps, mis = 3, cfg.mis_steps, 0.4
    k = m.mis.mis_steps(steps, mis)
    bound = 1 + n * k / steps
    size = cfg.mis_size
    lay = make_layout(m, n, "boxes", size, size)
    latent = {"samples": torch.zeros(1, 4, size // 8, size // 8)}
    g = make_grounding(m, instdiff, lay)
    patched = m.patch.apply_patches(model, instdiff, g, 1.0, 0.0, True, False)
    node = m.sampler.InstanceDiffusionKSampler()
    runs = {"plain (mis=0)": (0.0, 0), "MIS batched (max_batch=0)": (mis, 0), "MIS one-by-one (max_batch=1)": (mis, 1)}

    def go(name):
        mis_, mb = runs[name]
        return node.sample(patched, 0, steps, 7.0, "euler", "normal", text_cond(1), text_cond(2), latent, 1.0, mis_, mb)
    for name in runs:  # warm-up (short)
        mis_, mb = runs[name]
        node.sample(patched, 0, 2, 7.0, "euler", "normal", text_cond(1), text_cond(2), latent, 1.0, mis_ and 0.5, mb)
    times = {r: [] for r in runs}
    for r in range(cfg.reps4):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            times[name].append(timed(m, lambda: go(name))[0])
            print(f"    {name:30s} {times[name][-1]:.2f} s", flush=True)
    t_mg = med([timed(m, lambda: m.grounding.mis_grounding(instdiff.position_net, g, 1))[0] for _ in range(cfg.reps4)])
    plain = med(times["plain (mis=0)"])
    rep.detail(4, f"Tiny SD1.5-config UNet (model_channels {cfg.tiny_channels}, random weights) with matching-width "
                  f"fusers (the position net is full size), {size}x{size} image (latent {size // 8}x{size // 8}), batch "
                  f"1, {n} box instances, euler / normal, {steps} steps, cfg 7, mis {mis} -> {k} MIS steps, ScaleU "
                  f"on. Bound = 1 + n*k/steps = {bound:.3f} (UNet work: (n+1)*k + (steps-k) latent-steps vs steps). "
                  f"Median of {cfg.reps4} interleaved runs. The MIS run also builds the {n} single-instance "
                  f"groundings (`mis_grounding`: {t_mg:.2f} s here, i.e. {t_mg / plain:.3f} of a plain run).")
    rep.detail(4, "")
    rep.detail(4, "| run | total s | / plain |")
    rep.detail(4, "|---|---|---|")
    for name in runs:
        rep.detail(4, f"| {name} | {med(times[name]):.2f} | {med(times[name]) / plain:.3f} |")
    for name in list(runs)[1:]:
        ratio = med(times[name]) / plain
        rep.row(4, f"{name} / plain", f"<= {1.05 * bound:.3f} (1.05 x bound {bound:.3f})", f"{ratio:.3f}",
                ratio <= 1.05 * bound)
    b, o = med(times["MIS batched (max_batch=0)"]), med(times["MIS one-by-one (max_batch=1)"])
    rep.row(4, "MIS batched / one-by-one", "reported", f"{b / o:.3f}")


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
            model = m.patch.apply_patches(model, instdiff, g, 1.0, 0.0, True, True)
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
            patched = m.patch.apply_patches(model, instdiff, g, 1.0, 0.0, True, True)
            node.sample(patched, i, 4, 7.0, "euler", "normal", text_cond(1), text_cond(2), latent, 1.0, 0.5, 0)
            del patched, g
            gc.collect()
            series.append(rss_bytes())
            if cuda:
                cuda_series.append(torch.cuda.memory_allocated())
        out.update(series=series, cuda_series=cuda_series)
    print("CHILD_RESULT " + json.dumps(out), flush=True)


def run_child(args, mode, cfg_json):
    cmd = [sys.executable, __file__, "--device", args.device, "--threads", str(args.threads), "--child", mode,
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
    rep.detail(5, "")
    rep.detail(5, "| process | RSS after run GiB | peak RSS GiB |")
    rep.detail(5, "|---|---|---|")
    rep.detail(5, f"| plain | {plain['rss'] / GiB:.2f} | {plain['peak'] / GiB:.2f} |")
    rep.detail(5, f"| patched | {patched['rss'] / GiB:.2f} | {patched['peak'] / GiB:.2f} |")
    rep.detail(5, f"| extra | {extra / GiB:.2f} | {extra_peak / GiB:.2f} |")
    if "cuda_alloc" in plain:
        rep.detail(5, f"| CUDA allocated plain / patched GiB | {plain['cuda_alloc'] / GiB:.2f} / "
                      f"{patched['cuda_alloc'] / GiB:.2f} | peak {plain['cuda_peak'] / GiB:.2f} / "
                      f"{patched['cuda_peak'] / GiB:.2f} |")
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


# ----------------------------------------------------------------------------------------------- machine / output
def machine_description(m):
    import torch
    cpu = platform.processor() or "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines = [f"- CPU: {cpu}; {os.cpu_count()} logical cores, {len(os.sched_getaffinity(0))} usable by this process",
             f"- torch {torch.__version__}, {torch.get_num_threads()} intra-op threads; Python {platform.python_version()}"
             f"; {platform.platform()}"]
    try:
        mem = [l for l in open("/proc/meminfo") if l.startswith("MemTotal")][0].split()[1]
        lines.append(f"- RAM: {int(mem) / 2 ** 20:.1f} GiB")
    except (OSError, IndexError):
        pass
    if torch.cuda.is_available():
        lines.append(f"- GPU: {torch.cuda.get_device_name(0)} ({torch.cuda.get_device_properties(0).total_memory / GiB:.0f}"
                     f" GiB), CUDA {torch.version.cuda}")
    else:
        lines.append("- GPU: none")
    lines.append(f"- device used: {m.device}; host ComfyUI: {host_revision()}")
    return lines


def host_revision():
    try:
        from scripts.hostenv import host_dir
        rev = subprocess.run(["git", "-C", str(host_dir()), "log", "-1", "--format=%h %cd", "--date=short"],
                             capture_output=True, text=True).stdout.strip()
        return rev or "unknown"
    except Exception:  # noqa: BLE001
        return "unknown"


def write_results(path, rep: Report, m, args, cfg, elapsed, loads):
    lines = ["# InstanceDiffusion node pack: benchmark results", "",
             f"Produced by `.venv/bin/python bench/run.py{' --quick' if args.quick else ''} --device {args.device}` "
             f"(sections {','.join(map(str, args.sections))}) in {elapsed / 60:.1f} min. Random weights throughout "
             "(timing and memory do not depend on the values).", "", "## Machine", ""]
    lines += machine_description(m)
    lines.append(f"- load average (1 min) at start / end: {loads[0]:.2f} / {loads[1]:.2f} (the CPU is shared: timings "
                 "are medians of interleaved repeats, and section 2 also gives the in-call ratio)")
    lines += ["", "## Summary", "", "| # | item | target | measured | result |", "|---|---|---|---|---|"]
    for s, item, target, measured, ok in rep.rows:
        res = "-" if ok is None else ("**pass**" if ok else "**FAIL**")
        lines.append(f"| {s} | {item} | {target} | {measured} | {res} |")
    for s in sorted(set(rep.details) | set(rep.notes)):
        lines += ["", f"## {s}. {SECTION_TITLES[s]}", ""] + rep.details.get(s, [])
        if s in rep.notes:
            lines += [""] + rep.notes[s]
    notes = REPO / "bench" / "NOTES.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    Path(path).write_text("\n".join(lines) + "\n")


def print_table(rep: Report):
    headers = ("#", "item", "target", "measured", "result")
    rows = [(str(s), i, t, v, "-" if ok is None else ("pass" if ok else "FAIL")) for s, i, t, v, ok in rep.rows]
    widths = [min(60, max(len(h), *(len(r[k]) for r in rows))) if rows else len(h) for k, h in enumerate(headers)]
    fmt = "  ".join(f"{{:{w}.{w}}}" for w in widths)
    print()
    print(fmt.format(*headers))
    print(fmt.format(*("-" * w for w in widths)))
    for r in rows:
        print(fmt.format(*r))


class Config:
    def __init__(self, quick: bool, device: str):
        gpu = device == "cuda"
        self.tiny_channels = 64
        self.reps1 = 1 if quick else 2
        self.count_steps = (2, 4) if quick else (2, 5)
        if quick and not gpu:
            self.res2 = [(32, 32), (32, 48)]
            self.reps2_per_res = [2, 1]
        else:
            self.res2 = [(64, 64), (64, 96)]
            self.reps2_per_res = [5, 5] if gpu else [2, 1]
        self.reps2 = "/".join(map(str, self.reps2_per_res))
        self.warmup2 = gpu
        self.fusers_alone = gpu or quick  # on a CPU full run "fusers" alone is derived in-call (time budget)
        self.res3 = self.res2[0]
        self.reps3 = 3 if gpu else 1
        self.mis_steps = 10
        self.mis_size = 128 if not gpu else 512
        self.reps4 = 1 if quick else 2
        self.mem_latent = (64, 64) if gpu else (32, 32)
        if os.environ.get("INSTDIFF_BENCH_SMOKE"):  # plumbing check only: tiny latents, single repeats
            self.res2, self.reps2_per_res, self.res3 = [(8, 8), (8, 16)], [1, 1], (8, 8)
            self.reps2, self.mis_steps, self.reps4, self.reps1, self.mem_latent = "1/1", 4, 1, 1, (8, 8)


def guarded(rep, section, fn, *a):
    """Run a section; an exception becomes a FAIL row (the other sections and RESULTS.md still happen)."""
    import traceback
    try:
        fn(*a)
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        rep.row(section, f"section {section} crashed", "runs", f"{type(exc).__name__}: {str(exc)[:200]}", False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller latents and fewer repeats")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (default: 1 on CPU, as other jobs share the cores: with 2 "
                             "threads on a loaded 2-core machine every op waits for a descheduled OpenMP thread; "
                             "measured 0.22 s vs 1.3-12 s per tiny-UNet call; torch's default on cuda)")
    parser.add_argument("--sections", default="1,2,3,4,5,6")
    parser.add_argument("--out", default=str(REPO / "bench" / "RESULTS.md"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-cfg", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.sections = sorted({int(s) for s in args.sections.split(",") if s.strip()})
    import torch
    if args.threads or args.device == "cpu":
        torch.set_num_threads(args.threads or 1)
    m = setup(args.device)
    if args.child:
        child_memory(m, args.child, args.child_cfg)
        return 0
    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible to torch")
    cfg = Config(args.quick, args.device)
    rep = Report()
    t0 = time.time()
    loads = [os.getloadavg()[0]]
    need_tiny = bool({1, 4} & set(args.sections))
    need_big = bool({2, 3} & set(args.sections))
    tiny = big = None
    if need_tiny:
        print(f"building tiny models (model_channels {cfg.tiny_channels})", flush=True)
        tiny = {"unet": build_unet_model(m, cfg.tiny_channels), "instdiff": build_instdiff(m, cfg.tiny_channels)}
    if 1 in args.sections:
        guarded(rep, 1, section1, m, cfg, rep, tiny)
    if 4 in args.sections:
        guarded(rep, 4, section4, m, cfg, rep, tiny)
    tiny = None
    gc.collect()
    if need_big:
        print("building full-size models (model_channels 320)", flush=True)
        big = {"unet": build_unet_model(m, 320), "instdiff": build_instdiff(m, 320)}
        guarded(rep, 2, section2_3, m, cfg, rep, big, 2 in args.sections, 3 in args.sections)
        big = None
        gc.collect()
    if 5 in args.sections:
        guarded(rep, 5, section5, m, cfg, rep, args)
    if 6 in args.sections:
        guarded(rep, 6, section6, m, cfg, rep)
    loads.append(os.getloadavg()[0])
    elapsed = time.time() - t0
    print_table(rep)
    write_results(args.out, rep, m, args, cfg, elapsed, loads)
    print(f"\nwrote {args.out} ({elapsed / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
