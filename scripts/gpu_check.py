#!/usr/bin/env python
"""GPU check (issue 14): InstanceDiffusion's speed and memory through the host's model management, on any torch device."""
# Usage: .venv/bin/python scripts/gpu_check.py --device cuda|mps|cpu [--tiny] [--lowvram] [--out FOLDER]
# Sections (all through the host's own sampling, so its model management loads, counts and unloads the weights):
#   unet_calls     fp32 and fp16: time per UNet call (one sampler step, cond+uncond batch) of the patched model over
#                  the plain one at 512x512 and 768x512, the host's loaded-model accounting, peak memory, the weights'
#                  round trips (device changes of the stored fusers seen around the timed runs and at each fuser call)
#   mis            MIS with 3 and 10 instances: run time over a plain run, against the bound 1 + n*mis
#   masked         grouped masked attention vs the dense mask vs unmasked: time per UNet call and peak memory (10- and
#                  3-instance layouts, both sizes, the device's compute dtype), and one attention call's fixed cost in
#                  query-key pairs (the grouping's cost model, instdiff_model/grouped_attention.py)
#   memory         peak device memory of a masked-attention run and what stays allocated after "unload models"
#   position_net   time of the instance tokenizer's position net (3 and 10 instances)
# Writes gpu_check.json and gpu_check.md to --out. Random SD1.5 stand-ins (scripts/random_models.py) at full size, or
# at --tiny sizes (UNet width 32, 64x64 and 96x64 pixels) for CI on the CPU. A full GPU run is sized to take < 8 min.
import argparse
import gc
import importlib
import json
import math
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MiB = 2 ** 20
FULL = {"width": 320, "sizes": [(512, 512), (768, 512)], "steps": 10, "reps": 3, "mis_size": 512, "warm_up": True}
TINY = {"width": 32, "sizes": [(64, 64), (96, 64)], "steps": 3, "reps": 1, "mis_size": 64, "warm_up": False}
MIS, MIS_INSTANCES = 0.5, (3, 10)


def setup(device: str, lowvram: bool = False):
    """Import the host on `device` (its device choice happens once, at import) and this pack; a namespace of modules."""
    from scripts.hostenv import host_dir
    if str(host_dir()) not in sys.path:
        sys.path.insert(0, str(host_dir()))
    import comfy.cli_args
    comfy.cli_args.args.cpu = device == "cpu"
    comfy.cli_args.args.lowvram = lowvram
    import torch
    torch.set_grad_enabled(False)
    import comfy.model_management as mm
    from scripts.hostenv import import_pack
    pack = import_pack()
    comfy.cli_args.args.cpu = device == "cpu"
    if mm.get_torch_device().type != device:
        raise SystemExit(f"--device {device}: the host chose {mm.get_torch_device()} (is {device} available here?)")
    mod = lambda name: importlib.import_module(f"{pack.__name__}.{name}")  # noqa: E731
    import comfy.sample
    import comfy.supported_models
    return argparse.Namespace(
        torch=torch, mm=mm, sample=comfy.sample, supported=comfy.supported_models, device=mm.get_torch_device(),
        rm=importlib.import_module("scripts.random_models"), model=mod("instdiff_model.model"),
        layout=mod("instdiff_model.layout"), grounding=mod("instdiff_model.grounding"), mis=mod("instdiff_model.mis"),
        position_net=mod("instdiff_model.position_net"), apply=mod("nodes.apply"), sampler=mod("nodes.sampler"),
        tokenizer_node=mod("nodes.tokenizer"), loader=mod("nodes.loader"),
        attention=importlib.import_module("comfy.ldm.modules.attention"))


def sync(h):
    if h.device.type == "cuda":
        h.torch.cuda.synchronize()
    elif h.device.type == "mps":
        h.torch.mps.synchronize()


def timed(h, fn):
    sync(h)
    start = time.perf_counter()
    fn()
    sync(h)
    return time.perf_counter() - start


def allocated(h) -> int:
    """Bytes the device's allocator holds for tensors (CPU: the process's resident memory)."""
    if h.device.type == "cuda":
        return h.torch.cuda.memory_allocated()
    if h.device.type == "mps":
        return h.torch.mps.current_allocated_memory()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def reset_peak(h) -> int:
    if h.device.type == "cuda":
        h.torch.cuda.reset_peak_memory_stats()
    return allocated(h)


def peak(h) -> int:
    """Peak allocated bytes since reset_peak (MPS: current; CPU: the process's peak resident memory)."""
    if h.device.type == "cuda":
        return h.torch.cuda.max_memory_allocated()
    if h.device.type == "mps":
        return h.torch.mps.current_allocated_memory()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def unload(h) -> None:
    """What the UI's "Unload models" does: unload every model, empty the allocator's cache."""
    h.mm.unload_all_models()
    gc.collect()
    h.mm.soft_empty_cache(True)


def nbytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def loaded_bytes(h) -> int:
    """The host's loaded-model accounting: the bytes it believes its loaded models hold on the device."""
    total = 0
    for lm in h.mm.current_loaded_models:
        total += lm.model_loaded_memory() if hasattr(lm, "model_loaded_memory") else lm.model_memory()
    return int(total)


# ----------------------------------------------------------------------------------------------- builders
def unet(h, width: int, dtype, seed: int = 0):
    """A random SD1.5 UNet ModelPatcher in `dtype`, built like the host builds a checkpoint's model."""
    config = h.supported.SD15(h.rm.sd15_unet_config(width))
    config.set_inference_dtype(dtype, None)
    base = config.get_model({})
    h.rm.randomize_(base.diffusion_model, seed)
    import comfy.model_patcher
    return comfy.model_patcher.ModelPatcher(base, load_device=h.device, offload_device=h.mm.unet_offload_device())


def instdiff(h, width: int):
    """Random InstanceDiffusion weights stored as the loader's `auto` precision stores them."""
    model = h.model.InstanceDiffusionModel(width)
    h.rm.randomize_(model, 1)
    return model.eval().requires_grad_(False).set_precision(h.loader.storage_dtype("auto", h.device))


def layout(h, n: int, width: int, height: int):
    """n box instances on a grid."""
    cols = math.ceil(math.sqrt(n))
    cw, ch = width / cols, height / math.ceil(n / cols)
    return h.layout.Layout(width=width, height=height, caption="a check scene", instances=[
        h.layout.Instance(caption=f"object {i}",
                          box=((i % cols + 0.15) * cw, (i // cols + 0.15) * ch, 0.7 * cw, 0.7 * ch)) for i in range(n)])


_CONDITIONINGS = {}


def conditioning(h, model, lay, seed: int = 0, cached: bool = True):
    """The tokenizer node's work without CLIP: position net (host-loaded) on random phrase embeddings, random caption
    conds."""
    key = (len(lay.instances), lay.width, lay.height, seed)
    if cached and key in _CONDITIONINGS:
        return _CONDITIONINGS[key]
    torch = h.torch
    emb = torch.randn(len(lay.instances), 768, generator=torch.Generator().manual_seed(seed))
    net = h.tokenizer_node.load_position_net(model)
    g = h.grounding.build_grounding(net, [lay], [emb], h.position_net.choose_drop_config(lay), seed)
    gen = torch.Generator().manual_seed(seed + 1)
    captions = tuple(torch.randn(1, 77, 768, generator=gen) for _ in lay.instances)
    _CONDITIONINGS[key] = h.tokenizer_node.InstanceConditioning(g, captions)
    return _CONDITIONINGS[key]


def compute_dtype(h):
    """The UNet dtype users run on the device: fp16 on GPUs, fp32 on the CPU."""
    return h.torch.float32 if h.device.type == "cpu" else h.torch.float16


def cond(h, seed: int):
    return [[h.torch.randn(1, 77, 768, generator=h.torch.Generator().manual_seed(seed)), {}]]


class DeviceTrail:
    """Where a module's stored weights are: seen before and after each run and at each call of the module."""

    def __init__(self, module):
        self.module, self.seen = module, []
        module.register_forward_pre_hook(lambda *_: self.look())

    def look(self) -> None:
        self.seen.append(next(self.module.parameters()).device)

    def moves(self) -> int:
        return sum(a != b for a, b in zip(self.seen, self.seen[1:]))


def step_times(h, model, w: int, hgt: int, steps: int) -> list:
    """Seconds per sampler step (one UNet call on the cond+uncond batch) of the host's KSampler path, first dropped."""
    stamps = []

    def callback(*_):
        sync(h)
        stamps.append(time.perf_counter())
    latent = h.torch.zeros(1, 4, hgt // 8, w // 8)
    noise = h.sample.prepare_noise(latent, 0)
    h.sample.sample(model, noise, steps, 7.0, "euler", "normal", cond(h, 1), cond(h, 2), latent, callback=callback,
                    disable_pbar=True, seed=0)
    return [b - a for a, b in zip(stamps, stamps[1:])]


# ----------------------------------------------------------------------------------------------- sections
def unet_calls(h, cfg, weights):
    """Patched/plain time per UNet call, fp32 and fp16, at each size; host accounting and weight round trips."""
    torch, out = h.torch, []
    apply = h.apply.ApplyInstanceDiffusion()
    trail = DeviceTrail(weights.fusers[0])
    for dtype in (torch.float32, torch.float16):
        plain = unet(h, cfg["width"], dtype)
        for w, hgt in cfg["sizes"]:
            cond_in = conditioning(h, weights, layout(h, 3, w, hgt))
            (patched,) = apply.apply(plain, weights, cond_in, 1.0, 0.0, True, False)
            if cfg["warm_up"]:
                step_times(h, plain, w, hgt, 2), step_times(h, patched, w, hgt, 2)
            times, accounted, moves = {"plain": [], "patched": []}, {}, trail.moves()
            for rep in range(cfg["reps"]):
                for name in (("plain", "patched") if rep % 2 == 0 else ("patched", "plain")):
                    trail.look()
                    times[name] += step_times(h, plain if name == "plain" else patched, w, hgt, cfg["steps"])
                    trail.look()
                    accounted[name] = loaded_bytes(h)
            per = {k: statistics.median(v) for k, v in times.items()}
            patch_bytes = nbytes(weights.fusers) + nbytes(weights.scaleu)
            start = reset_peak(h)
            step_times(h, patched, w, hgt, 2)
            top = peak(h)
            out.append({"dtype": str(dtype).split(".")[-1], "size": f"{w}x{hgt}", "steps": cfg["steps"],
                        "plain_s": per["plain"], "patched_s": per["patched"], "ratio": per["patched"] / per["plain"],
                        "loaded_bytes_plain": accounted["plain"], "loaded_bytes_patched": accounted["patched"],
                        "patch_weight_bytes": patch_bytes,
                        "accounted_includes_patch_weights": accounted["patched"] - accounted["plain"] >= patch_bytes,
                        "peak_bytes_patched": top, "peak_over_start_bytes_patched": top - start,
                        "fuser_weight_moves_per_run": (trail.moves() - moves) / cfg["reps"]})
            print(f"  unet_calls {out[-1]['dtype']} {w}x{hgt}: ratio {out[-1]['ratio']:.3f}", flush=True)
        del plain
        unload(h)
    return out


def three_instances(h, width: int, height: int):
    """3 boxes over about half the image, the rest background (as bench/grouped.py)."""
    boxes = [(0.05, 0.1, 0.4, 0.5), (0.5, 0.1, 0.4, 0.4), (0.3, 0.55, 0.4, 0.35)]
    return h.layout.Layout(width=width, height=height, caption="a check scene", instances=[
        h.layout.Instance(caption=f"object {i}", box=(x * width, y * height, bw * width, bh * height))
        for i, (x, y, bw, bh) in enumerate(boxes)])


def call_overhead_pairs(h, channels: int) -> float:
    """The fixed cost of one call of the host's unmasked attention in query-key pairs: a 16-query call's time over the
    time per pair of a 4096 x 4280 call (compare with grouped_attention.CALL_OVERHEAD_PAIRS)."""
    torch, dtype = h.torch, compute_dtype(h)
    big = [torch.randn(1, n, channels, device=h.device, dtype=dtype) for n in (4096, 4280, 4280)]
    small = [torch.randn(1, n, channels, device=h.device, dtype=dtype) for n in (16, 64, 64)]
    fn = h.attention.optimized_attention
    per = lambda args, n: min(timed(h, lambda: [fn(*args, 8) for _ in range(n)]) / n for _ in range(3))  # noqa: E731
    return per(small, 20) / (per(big, 3) / (4096 * 4280))


def masked(h, cfg, weights):
    """Time per UNet call and peak memory: unmasked, dense masked, grouped masked (fusers only, ScaleU off)."""
    apply, out = h.apply.ApplyInstanceDiffusion(), {"rows": []}
    plain = unet(h, cfg["width"], compute_dtype(h))
    for w, hgt in cfg["sizes"]:
        for name, lay in (("10 instances", layout(h, 10, w, hgt)), ("3 instances", three_instances(h, w, hgt))):
            cond_in, row = conditioning(h, weights, lay), {"size": f"{w}x{hgt}", "layout": name}
            for config in ("unmasked", "dense", "grouped"):
                (patched,) = apply.apply(plain, weights, cond_in, 1.0, 0.0, False, config != "unmasked")
                for p in patched.model_options["transformer_options"]["patches"]["middle_patch"]:
                    p.grouped = config == "grouped"
                if cfg["warm_up"]:
                    step_times(h, patched, w, hgt, 2)
                start = reset_peak(h)
                row[f"{config}_s"] = statistics.median(
                    t for _ in range(cfg["reps"]) for t in step_times(h, patched, w, hgt, cfg["steps"]))
                row[f"{config}_peak_over_start_bytes"] = peak(h) - start
            row["grouped_over_unmasked"] = row["grouped_s"] / row["unmasked_s"]
            row["grouped_over_dense"] = row["grouped_s"] / row["dense_s"]
            out["rows"].append(row)
            print(f"  masked {row['size']} {name}: grouped / unmasked {row['grouped_over_unmasked']:.3f}, "
                  f"grouped / dense {row['grouped_over_dense']:.3f}", flush=True)
    del plain
    unload(h)
    out["call_overhead_pairs"] = call_overhead_pairs(h, cfg["width"])
    return out


def mis(h, cfg, weights):
    """MIS run time over a plain run (same sampler, mis = 0) against the bound 1 + n*mis (mis as run: k/steps)."""
    apply, node, out = h.apply.ApplyInstanceDiffusion(), h.sampler.InstanceDiffusionKSampler(), []
    size, steps, plain = cfg["mis_size"], max(cfg["steps"], 4), unet(h, cfg["width"], compute_dtype(h))
    latent = {"samples": h.torch.zeros(1, 4, size // 8, size // 8)}
    for n in MIS_INSTANCES:
        cond_in = conditioning(h, weights, layout(h, n, size, size))
        (patched,) = apply.apply(plain, weights, cond_in, 1.0, 0.0, True, False)
        run = lambda fraction: node.sample(patched, 0, steps, 7.0, "euler", "normal", cond(h, 1), cond(h, 2),  # noqa
                                           latent, 1.0, fraction, 0)
        if cfg["warm_up"]:
            run(MIS)
        plain_s = statistics.median(timed(h, lambda: run(0.0)) for _ in range(cfg["reps"]))
        mis_s = statistics.median(timed(h, lambda: run(MIS)) for _ in range(cfg["reps"]))
        k = h.mis.mis_steps(steps, MIS)
        bound = 1 + n * k / steps
        out.append({"instances": n, "steps": steps, "mis_steps": k, "plain_s": plain_s, "mis_s": mis_s,
                    "ratio": mis_s / plain_s, "bound": bound, "within_bound": mis_s / plain_s <= bound})
        print(f"  mis n={n}: ratio {out[-1]['ratio']:.2f} (bound {out[-1]['bound']:.2f})", flush=True)
    return out


def memory(h, cfg, weights):
    """Peak of a masked-attention run (10 instances, largest size) and what stays allocated after unloading."""
    unload(h)
    plain = unet(h, cfg["width"], compute_dtype(h))
    w, hgt = cfg["sizes"][-1]
    before = allocated(h)
    (patched,) = h.apply.ApplyInstanceDiffusion().apply(plain, weights, conditioning(h, weights, layout(h, 10, w, hgt)),
                                                       1.0, 0.0, True, True)
    base = reset_peak(h)
    step_times(h, patched, w, hgt, 2)
    top = peak(h)
    loaded = allocated(h)
    unload(h)
    after = allocated(h)
    return {"size": f"{w}x{hgt}", "instances": 10, "masked_attention": True, "before_bytes": before,
            "peak_bytes": top, "peak_over_start_bytes": top - base, "loaded_bytes": loaded, "after_unload_bytes": after,
            "left_after_unload_bytes": after - before}


def position_net(h, cfg, weights):
    """Seconds of one tokenizer pass (position net on the host-loaded device) for 3 and 10 instances."""
    out = []
    size = cfg["mis_size"]
    net = h.tokenizer_node.load_position_net(weights)
    for n in MIS_INSTANCES:
        lay = layout(h, n, size, size)
        if cfg["warm_up"]:
            conditioning(h, weights, lay, cached=False)
        secs = statistics.median(timed(h, lambda: conditioning(h, weights, lay, cached=False))
                                 for _ in range(cfg["reps"]))
        out.append({"instances": n, "seconds": secs, "device": str(next(net.parameters()).device),
                    "dtype": str(next(net.parameters()).dtype).split(".")[-1]})
    return out


# ----------------------------------------------------------------------------------------------- report
def markdown(result) -> str:
    env = result["environment"]
    lines = [f"# GPU check ({'tiny, ' if env['tiny'] else ''}{env['device']})", "",
             f"Device {env['device_name']}, torch {env['torch']}, attention `{env['attention']}`, host VRAM state "
             f"{env['vram_state']}, "
             f"{env['seconds']:.0f} s in all."]
    if env["device"] == "cpu":
        lines += ["", "**No GPU was used**: this run is on the CPU (no GPU was lent to the session that ran it), so "
                  "the numbers check that the script works, not GPU speed or memory. Memory figures on the CPU are the "
                  "process's resident memory."]
    lines += ["", "## Time per UNet call, patched / plain", "",
              "| dtype | size | plain ms | patched ms | ratio | host-accounted MiB plain / patched (fusers+ScaleU) "
              "| peak MiB patched (over start) | fuser moves per run |", "|---|---|---|---|---|---|---|---|"]
    for r in result["unet_calls"]:
        lines.append(f"| {r['dtype']} | {r['size']} | {1e3 * r['plain_s']:.1f} | {1e3 * r['patched_s']:.1f} | "
                     f"{r['ratio']:.3f} | {r['loaded_bytes_plain'] / MiB:.0f} / {r['loaded_bytes_patched'] / MiB:.0f} "
                     f"({r['patch_weight_bytes'] / MiB:.0f}) | {r['peak_bytes_patched'] / MiB:.0f} "
                     f"({r['peak_over_start_bytes_patched'] / MiB:.0f}) | {r['fuser_weight_moves_per_run']:g} |")
    lines += ["", f"## MIS (mis {MIS}), run time over a plain run", "",
              "| instances | ratio | bound 1 + n*mis | within |", "|---|---|---|---|"]
    lines += [f"| {r['instances']} | {r['ratio']:.2f} | {r['bound']:.2f} | {'yes' if r['within_bound'] else 'NO'} |"
              for r in result["mis"]]
    lines += ["", "A MIS run also builds its n single-instance groundings (position net passes); with the tiny UNet "
              "on a CPU those dominate, at full size on a GPU the UNet does."]
    lines += ["", "## Masked attention: grouped vs dense vs unmasked (fusers only)", "",
              "| size | layout | unmasked ms | dense ms | grouped ms | grouped / unmasked | grouped / dense "
              "| peak over start MiB unmasked / dense / grouped |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['size']} | {r['layout']} | {1e3 * r['unmasked_s']:.1f} | {1e3 * r['dense_s']:.1f} | "
              f"{1e3 * r['grouped_s']:.1f} | {r['grouped_over_unmasked']:.3f} | {r['grouped_over_dense']:.3f} | "
              + " / ".join(f"{r[c + '_peak_over_start_bytes'] / MiB:.0f}" for c in ("unmasked", "dense", "grouped"))
              + " |" for r in result["masked"]["rows"]]
    lines += ["", f"One unmasked attention call's fixed cost: {result['masked']['call_overhead_pairs']:.0f} query-key "
              "pairs (the grouping's cost model assumes CALL_OVERHEAD_PAIRS of instdiff_model/grouped_attention.py)."]
    m = result["memory"]
    lines += ["", "## Memory", "", f"Masked attention, {m['instances']} instances, {m['size']}: peak "
              f"{m['peak_bytes'] / MiB:.0f} MiB ({m['peak_over_start_bytes'] / MiB:.0f} MiB over the start), "
              f"{m['left_after_unload_bytes'] / MiB:.1f} MiB left allocated after unloading all models."]
    lines += ["", "## Position net", "", "| instances | ms | device | dtype |", "|---|---|---|---|"]
    lines += [f"| {r['instances']} | {1e3 * r['seconds']:.1f} | {r['device']} | {r['dtype']} |"
              for r in result["position_net"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "mps", "cpu"), default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny UNet and sizes (CI on the CPU)")
    parser.add_argument("--lowvram", action="store_true", help="run the host as with --lowvram")
    parser.add_argument("--out", default="gpu_check_results", help="folder for gpu_check.json and gpu_check.md")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    h = setup(args.device, args.lowvram)
    cfg = TINY if args.tiny else FULL
    if args.tiny and h.device.type == "cpu":
        h.torch.set_num_threads(1)  # tiny ops: thread hand-offs would cost more than the work on a shared CPU
    weights = instdiff(h, cfg["width"])
    result, seconds = {}, {}
    for section in (unet_calls, masked, mis, memory, position_net):
        begin = time.perf_counter()
        print(f"[{section.__name__}]", flush=True)
        result[section.__name__] = section(h, cfg, weights)
        seconds[section.__name__] = time.perf_counter() - begin
    name = h.torch.cuda.get_device_name() if h.device.type == "cuda" else platform.processor() or platform.machine()
    result["environment"] = {"device": h.device.type, "device_name": name, "torch": h.torch.__version__,
                             "tiny": args.tiny, "lowvram": args.lowvram, "vram_state": h.mm.vram_state.name,
                             "attention": h.attention.optimized_attention.__name__,
                             "seconds": time.perf_counter() - start, "section_seconds": seconds}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    (out / "gpu_check.md").write_text(markdown(result))
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'} ({result['environment']['seconds']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
