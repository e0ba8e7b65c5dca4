"""Benchmark sections 1 and 4 (tiny UNet): the instance tokenizer's cost and call count, and the MIS sampler's cost."""
from bench.common import (FORMATS, caption_conds, conditioning, make_grounding, make_layout, med, phrase_embeddings, text_cond,
                          timed)
from bench.report import Report


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
    rep.table(1, "instances", "formats", "drop config", "preprocess s", "position-net forward s", "build_grounding s")
    # warm-up
    lay = make_layout(m, 1, "masks")
    make_grounding(m, big, lay)
    worst = 0.0
    for n in counts:
        for fmt in fmts:
            lay = make_layout(m, n, fmt)
            drop = m.position_net.choose_drop_config(lay)
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
            rep.table_row(1, n, fmt, drop, f"{med(pre):.3f}", f"{med(fwd):.3f}", f"{med(tot):.3f}")
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
                patched = m.patch.apply_patches(model, big, conditioning(m, g, caption_conds(lay)), 1.0, 0.0, True, True)
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
    rep.table(1, "sampler", "steps", "calls in tokenizer node", "calls during sampling")
    for (mode, steps), (a, b) in results.items():
        rep.table_row(1, mode, steps, a, b)
    for mode in ("KSampler", "MIS"):
        during = [results[(mode, s)][1] for s in cfg.count_steps]
        ok = len(set(during)) == 1
        rep.row(1, f"position-net calls during a {mode} run, steps {'/'.join(map(str, cfg.count_steps))}",
                "independent of steps", "/".join(map(str, during)), ok)


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
    patched = m.patch.apply_patches(model, instdiff, conditioning(m, g, caption_conds(lay)), 1.0, 0.0, True, False)
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
    t_mg = med([timed(m, lambda: m.mis.mis_grounding(g, 1))[0] for _ in range(cfg.reps4)])
    plain = med(times["plain (mis=0)"])
    rep.detail(4, f"Tiny SD1.5-config UNet (model_channels {cfg.tiny_channels}, random weights) with matching-width "
                  f"fusers (the position net is full size), {size}x{size} image (latent {size // 8}x{size // 8}), batch "
                  f"1, {n} box instances, euler / normal, {steps} steps, cfg 7, mis {mis} -> {k} MIS steps, ScaleU "
                  f"on. Bound = 1 + n*k/steps = {bound:.3f} (UNet work: (n+1)*k + (steps-k) latent-steps vs steps). "
                  f"Median of {cfg.reps4} interleaved runs. The MIS run also builds the {n} single-instance "
                  f"groundings (`mis_grounding`: {t_mg:.2f} s here, i.e. {t_mg / plain:.3f} of a plain run).")
    rep.table(4, "run", "total s", "/ plain")
    for name in runs:
        rep.table_row(4, name, f"{med(times[name]):.2f}", f"{med(times[name]) / plain:.3f}")
    for name in list(runs)[1:]:
        ratio = med(times[name]) / plain
        rep.row(4, f"{name} / plain", f"<= {1.05 * bound:.3f} (1.05 x bound {bound:.3f})", f"{ratio:.3f}",
                ratio <= 1.05 * bound)
    b, o = med(times["MIS batched (max_batch=0)"]), med(times["MIS one-by-one (max_batch=1)"])
    rep.row(4, "MIS batched / one-by-one", "reported", f"{b / o:.3f}")
