"""Benchmark plumbing: the host and pack in-process, timing, memory readings, random models, layouts and groundings."""
import importlib
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GiB = 2 ** 30
MiB = 2 ** 20
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
    for short, name in [("patch", "nodes.patch"), ("sampler", "nodes.sampler"), ("tokenizer", "nodes.tokenizer"),
                        ("grounding", "instdiff_model.grounding"), ("model", "instdiff_model.model"),
                        ("layout", "instdiff_model.layout"), ("preprocess", "instdiff_model.preprocess"),
                        ("position_net", "instdiff_model.position_net"), ("blocks", "instdiff_model.blocks"),
                        ("mis", "instdiff_model.mis"), ("grouped", "instdiff_model.grouped_attention"),
                        ("masked", "instdiff_model.masked_attention")]:
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
    drop = drop or m.position_net.choose_drop_config(layout)
    return m.grounding.build_grounding(instdiff.position_net, [layout],
                                       [phrase_embeddings(len(layout.instances), seed)], drop, seed)


def conditioning(m, grounding, captions=()):
    """The Instance Tokenizer's output value for a grounding (and caption conds, for MIS runs): what Apply patches with."""
    return m.tokenizer.InstanceConditioning(grounding, tuple(captions))


def warm(patch, per: int, h: int, w: int, device, dtype) -> None:
    """Build a FuserPatch's device caches of a run (tokens; masks at the (h, w) token grid) before its first call, as
    that call would (benchmarks time the calls without this one-off cost)."""
    import torch
    like = torch.empty(0, device=device, dtype=dtype)
    frames = patch.grounding.frames_for(per)
    patch._tokens(True, frames, like)
    if patch.masked_attention:
        (patch._groups if patch.grouped else patch._mask)(frames, h, w, like)
    patch._weights(frames, h, w, like)


def caption_conds(layout, seed=0) -> tuple:
    """Random per-instance caption conds, as the Instance Tokenizer's captions (MIS runs: conditioning(captions=))."""
    import torch
    gen = torch.Generator().manual_seed(seed + 1)
    return tuple(torch.randn(1, 77, 768, generator=gen) for _ in layout.instances)


def text_cond(seed):
    import torch
    return [[torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(seed)), {}]]
