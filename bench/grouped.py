"""Benchmark section 7: grouped masked attention against the dense mask and unmasked: FLOP bounds, in-call time, memory."""
from bench.common import conditioning, make_grounding, make_layout, med, timed, warm
from bench.report import Report
from bench.unet_calls import TimedPatch, counted_flops, fuser_level_list, unet_call, warm_caches

CONFIGS = ("unmasked", "dense masked", "grouped masked")


def three_instance_layout(m, width: int, height: int):
    """3 boxes over about half the image (two of them overlapping a little), the rest background."""
    boxes = [(0.05, 0.1, 0.4, 0.5), (0.5, 0.1, 0.4, 0.4), (0.3, 0.55, 0.4, 0.35)]
    return m.layout.Layout(width=width, height=height, caption="a benchmark scene", instances=[
        m.layout.Instance(caption=f"object {i}", box=(x * width, y * height, w * width, h * height))
        for i, (x, y, w, h) in enumerate(boxes)])


def bench_layouts(m, h: int, w: int) -> dict:
    return {"10 instances (mixed)": make_layout(m, 10, "mixed", w * 8, h * 8),
            "3 instances (~50% background)": three_instance_layout(m, w * 8, h * 8)}


def grids(m, h: int, w: int) -> dict:
    """{(channels, token rows, token cols): number of fusers} of the 16 fusers at latent h x w."""
    out = {}
    for c, n in fuser_level_list(m, h, w):
        level = {hh * ww: (hh, ww) for hh, ww in ((-(-h // 2 ** k), -(-w // 2 ** k)) for k in range(3))}[n]
        out[(c, *level)] = out.get((c, *level), 0) + 1
    return out


def masked_saving(m, grounding, h: int, w: int) -> tuple:
    """(FLOPs the mask removes from the 16 fusers of one cond row: 4 C per disallowed query-key pair, background
    fraction of the finest grid, grouped frames / all grids)."""
    ga = m.grouped
    saved, background, grouped = 0, None, 0
    for (c, hh, ww), count in grids(m, h, w).items():
        plan = ga.frame_plans(grounding.regions[:1], grounding.present[:1], hh, ww)[0]
        saved += count * 4 * c * (plan.dense_pairs - plan.pairs)
        grouped += count * ga.grouped_pays(plan, m.device.type)
        if background is None or hh * ww > background[0]:
            member = m.masked.region_tokens(grounding.regions[:1], grounding.present[:1], hh, ww)[0]
            background = (hh * ww, float((~member.any(-1)).float().mean()))
    return saved, background[1], grouped


def patch_options(m, unet_model, instdiff, grounding, config: str, clock) -> dict:
    """transformer_options with the pack's fuser patch (ScaleU off: the bound counts fusers only) in `config`."""
    patched = m.patch.apply_patches(unet_model, instdiff, conditioning(m, grounding), 1.0, 0.0, False, config != "unmasked")
    patches = patched.model_options["transformer_options"]["patches"]
    for p in patches["middle_patch"]:
        p.grouped = config == "grouped masked"
    return {"patches": {k: [TimedPatch(p, m.device, clock) for p in v] for k, v in patches.items()}}


def section7(m, cfg, rep: Report, big):
    import torch
    unet, instdiff = big["unet"].model.diffusion_model, big["instdiff"]
    rep.detail(7, f"Full-size SD1.5 UNet, batch 2 (cond + uncond; the uncond row always attends unmasked), fusers only "
                  f"(ScaleU off), gate 1.0. FLOP bounds from torch.utils.flop_counter on meta tensors: dense bound = 1 + "
                  f"fuser FLOPs / plain UNet FLOPs (every query-key pair, what the dense masked call computes); masked "
                  f"bound = the same with the cond row's attention counting only the allowed query-key pairs (4 C "
                  f"FLOPs per pair; pairs from the grouping plans, equal to the dense mask's True count). In-call ratio "
                  f"= call time / (call time - time inside the fuser patch), 1 call each ({cfg.reps7} repeat(s), few "
                  f"on purpose: the 2 CPU cores were shared with other engineers' jobs, load in the Machine section).")
    rep.table(7, "latent", "layout", "background", "grouped grids", "dense bound", "masked bound", "config",
              "fuser s/call", "in-call ratio", "/ masked bound")
    for h, w in cfg.res7:
        unet_flops, fus_flops = counted_flops(m, h, w, 2)
        dense_bound = 1 + fus_flops / unet_flops
        gen = torch.Generator().manual_seed(7)
        x = torch.randn(2, 4, h, w, generator=gen).to(m.device)
        ctx = torch.randn(2, 77, 768, generator=gen).to(m.device)
        ts, sigmas = torch.tensor([500.0, 500.0], device=m.device), torch.tensor([1.0, 1.0], device=m.device)
        plain = med([timed(m, lambda: unet_call(m, unet, x, ctx, ts, sigmas, {}))[0] for _ in range(cfg.reps7)])
        unmasked = None
        for name, lay in bench_layouts(m, h, w).items():
            g = make_grounding(m, instdiff, lay)
            saved, background, grouped_grids = masked_saving(m, g, h, w)
            bound = 1 + (fus_flops - saved) / unet_flops
            for config in CONFIGS:
                if config == "unmasked" and unmasked is not None:
                    fs, ic = unmasked  # the same calls for every layout
                else:
                    clock = {}
                    opts = patch_options(m, big["unet"], instdiff, g, config, clock)
                    warm_caches(m, opts, h, w)
                    runs = []
                    for _ in range(cfg.reps7):
                        clock.clear()
                        t, _ = timed(m, lambda: unet_call(m, unet, x, ctx, ts, sigmas, opts))
                        inside = clock.get("FuserPatch", 0.0)
                        runs.append((inside, t / (t - inside)))
                        print(f"[7] {h}x{w} {name} {config}: {t:.2f} s (fusers {inside:.2f} s)", flush=True)
                    fs, ic = med([r[0] for r in runs]), med([r[1] for r in runs])
                    if config == "unmasked":
                        unmasked = (fs, ic)
                rep.table_row(7, f"{h}x{w}", name, f"{100 * background:.0f}%", f"{grouped_grids}/16",
                              f"{dense_bound:.3f}", f"{bound:.3f}", config, f"{fs:.2f}", f"{ic:.3f}",
                              f"{ic / bound:.3f}")
                if config == "grouped masked":
                    grouped_ic = ic
                if config == "dense masked":
                    dense_ic = ic
            rep.row(7, f"grouped masked, {name}, latent {h}x{w}", f"<= {1.05 * bound:.3f} (1.05 x masked bound "
                    f"{bound:.3f}; dense bound {dense_bound:.3f})", f"in-call {grouped_ic:.3f} (dense masked "
                    f"{dense_ic:.3f}, unmasked {unmasked[1]:.3f})", grouped_ic <= 1.05 * bound if (h, w) == cfg.res7[0]
                    else None)
            if name.startswith("3 ") and (h, w) == cfg.res7[0]:
                rep.row(7, f"grouped masked below unmasked, {name}, latent {h}x{w}", f"< {unmasked[1]:.3f}",
                        f"{grouped_ic:.3f}", grouped_ic < unmasked[1])
        print(f"[7] plain {plain:.2f} s", flush=True)
    rep.detail(7, "")
    rep.detail(7, f"The 16 fuser-patch calls of one UNet call measured alone (fuser_pass_seconds: the configs "
                  f"interleaved, minimum of {cfg.rounds7} rounds; steadier than whole calls on a loaded CPU).")
    rep.table(7, "latent", "layout", "config", "fusers alone s", "/ unmasked")
    for h, w in cfg.res7:
        alone = fuser_pass_seconds(m, instdiff, h, w, cfg.rounds7)
        for (name, config), t in alone.items():
            rep.table_row(7, f"{h}x{w}", name, config, f"{t:.2f}", f"{t / alone[('all', 'unmasked')]:.3f}")


# ----------------------------------------------------------------------------------------------- memory
def live_bytes_mode():
    """A TorchDispatchMode keeping the peak of the bytes held by tensors created inside it (outputs that alias an
    input are not new) and the largest one created while `inside` (our fuser patch): exact on meta tensors, which cost
    no memory and no compute."""
    import torch
    from torch.multiprocessing.reductions import StorageWeakRef
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class LiveBytes(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live, self.now, self.peak, self.largest, self.inside = {}, 0, 0, 0, False

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            inputs = {StorageWeakRef(t.untyped_storage()).cdata for t in tree_leaves((args, kwargs))
                      if isinstance(t, torch.Tensor)}
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    ref = StorageWeakRef(t.untyped_storage())
                    if ref.cdata not in inputs and ref.cdata not in self.live:
                        self.live[ref.cdata] = (ref, t.untyped_storage().nbytes())
                        self.now += self.live[ref.cdata][1]
                        if self.inside:
                            self.largest = max(self.largest, self.live[ref.cdata][1])
            self.peak = max(self.peak, self.now)
            for key in [k for k, (r, _) in self.live.items() if r.expired()]:
                self.now -= self.live.pop(key)[1]
            return out
    return LiveBytes()


def cache_bytes(cache: dict) -> int:
    """Bytes of the tensors in a FuserPatch's mask / group caches (the tokens, common to every config, left out)."""
    import torch
    seen, total, stack = set(), 0, [v for k, v in cache.items() if k[0] != "tokens"]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            if item.untyped_storage()._cdata not in seen:
                seen.add(item.untyped_storage()._cdata)
                total += item.untyped_storage().nbytes()
        elif isinstance(item, dict):
            stack += list(item.values())
        elif isinstance(item, (list, tuple)):
            stack += list(item)
        elif hasattr(item, "groups"):
            stack += list(item.groups)
    return total


def call_peak_bytes(m, h: int, w: int, config: str, grounding) -> dict:
    """Peak bytes of the tensors an fp16 UNet call creates (meta tensors), full-size UNet + fusers with the pack's
    FuserPatch: the first call (builds the per-run mask / group caches), a later one (plus the cache it holds), and
    the largest single tensor the fuser patch creates in the first call."""
    import comfy.supported_models
    import torch
    with torch.device("meta"):
        unet = comfy.supported_models.SD15(m.rm.sd15_unet_config(320)).get_model({}).diffusion_model.half()
        inst = m.model.InstanceDiffusionModel(320).half()
    fp = m.patch.FuserPatch(inst, conditioning(m, grounding), lambda sigma: 1.0, config != "unmasked", grouped=config == "grouped masked")
    modes = []

    def in_patch(x, extra_options):
        modes[-1].inside = True
        try:
            return fp(x, extra_options)
        finally:
            modes[-1].inside = False
    opts = {"patches": {"middle_patch": [in_patch]}, "cond_or_uncond": [1, 0]}
    x = torch.empty(2, 4, h, w, device="meta", dtype=torch.float16)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    # as fused kernels do: the output only (on meta, SDPA would decompose into its math form, scores included)
    torch.nn.functional.scaled_dot_product_attention = lambda q, k, v, *a, **kw: q.new_empty(*q.shape[:-1], v.shape[-1])
    try:
        for _ in range(2):
            modes.append(live_bytes_mode())
            with modes[-1]:
                unet(x, timesteps=torch.empty(2, device="meta"), context=torch.empty(2, 77, 768, device="meta",
                     dtype=torch.float16), transformer_options=dict(opts))
    finally:
        torch.nn.functional.scaled_dot_product_attention = sdpa
    held = cache_bytes(fp.cache.entries)
    return {"first": modes[0].peak, "later": modes[1].peak + held, "held": held, "largest": modes[0].largest}


def section7_memory(m, cfg, rep: Report, instdiff):
    GiB = 2 ** 30
    rep.detail(7, "")
    rep.detail(7, "Peak memory of a masked UNet call: full-size SD1.5 UNet + fusers in fp16 (as on GPUs), batch 2 "
                  "(cond + uncond), the 10-instance layout; every tensor on the meta device (no memory, no compute), "
                  "the peak of the bytes held by the tensors the call creates counted op by op (kernel workspaces "
                  "not included: SDPA's output only, as flash / memory-efficient kernels allocate). The first call "
                  "builds the per-run cache (dense: the N x (N+184) additive masks of the three token grids, with "
                  "their build temporaries; grouped: index tensors), later calls reuse it (their peak + the cache "
                  "held). Largest tensor: the largest one the fuser patch creates. Extra = the config's peak - the unmasked peak; the masked paths run the cond and uncond rows "
                  "through the fusers one chunk at a time, so their activations peak lower than unmasked (negative "
                  "extra where no mask is held).")
    rep.table(7, "latent", "config", "peak GiB first call", "peak GiB later call (+ cache)", "extra GiB first / later",
              "cache held GiB", "largest tensor GiB")
    for h, w in cfg.mem7:
        g = make_grounding(m, instdiff, make_layout(m, 10, "mixed", w * 8, h * 8))
        res = {c: call_peak_bytes(m, h, w, c, g) for c in CONFIGS}
        base = res["unmasked"]
        for c, r in res.items():
            rep.table_row(7, f"{h}x{w}", c, f"{r['first'] / GiB:.3f}", f"{r['later'] / GiB:.3f}",
                          f"{(r['first'] - base['first']) / GiB:+.3f} / {(r['later'] - base['later']) / GiB:+.3f}",
                          f"{r['held'] / GiB:.4f}", f"{r['largest'] / GiB:.3f}")
            print(f"[7] memory {h}x{w} {c}: {r}", flush=True)
        n = h * w
        mask = 2 * n * (n + 184)
        dense, grouped = res["dense masked"], res["grouped masked"]
        rep.row(7, f"peak extra memory of a masked UNet call over unmasked, latent {h}x{w} (fp16)",
                f"no N x (N+184) mask on the grouped path (one fp16 mask: {mask / GiB:.2f} GiB)",
                f"grouped {(grouped['first'] - base['first']) / GiB:+.3f} GiB (largest tensor "
                f"{grouped['largest'] / GiB:.3f} GiB), dense {(dense['first'] - base['first']) / GiB:+.2f} GiB "
                f"(first call; later {(grouped['later'] - base['later']) / GiB:+.3f} vs "
                f"{(dense['later'] - base['later']) / GiB:+.2f})", grouped["largest"] < mask / 4 <= dense["largest"])


# ----------------------------------------------------------------------------------------------- fusers alone
def fuser_pass_seconds(m, instdiff, h: int, w: int, rounds: int) -> dict:
    """Seconds of the 16 fuser-patch calls of one UNet call (batch 2, cond + uncond, the token grids and widths of a
    latent h x w), per config and layout: interleaved rounds, the minimum of each (robust to a loaded CPU)."""
    import torch
    gen = torch.Generator().manual_seed(9)
    levels = fuser_level_list(m, h, w)
    xs = [torch.randn(2, n, c, generator=gen).to(m.device) for c, n in levels]
    patches = {}
    for name, lay in bench_layouts(m, h, w).items():
        g = make_grounding(m, instdiff, lay)
        for config in CONFIGS:
            if config != "unmasked" or not patches:
                fp = m.patch.FuserPatch(instdiff, conditioning(m, g), lambda sigma: 1.0, config != "unmasked",
                                        grouped=config == "grouped masked")
                warm(fp, 1, h, w, m.device, torch.float32)
                for level in (1, 2):
                    warm(fp, 1, -(-h // 2 ** level), -(-w // 2 ** level), m.device, torch.float32)
                patches[(name, config) if config != "unmasked" else ("all", config)] = fp
    best = {}
    for _ in range(rounds):
        for key, fp in patches.items():
            def run():
                for i, x in enumerate(xs):
                    fp(x, {"cond_or_uncond": [1, 0], "transformer_index": i, "sigmas": None,
                           "original_shape": [2, 4, h, w]})
            t, _ = timed(m, run)
            best[key] = min(best.get(key, t), t)
            print(f"[7] fusers alone {h}x{w} {key}: {t:.2f} s", flush=True)
    return best
