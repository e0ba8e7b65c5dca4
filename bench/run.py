#!/usr/bin/env python
"""InstanceDiffusion node-pack benchmark: runs the measuring sections and writes bench/RESULTS.md."""
# Sections (issue 9): 1 tokenizer cost and 4 MIS cost (bench/tokens_mis.py, tiny UNet), 2 time per UNet call vs a
# FLOP bound and 3 the per-call-tokenizer (logtd) baseline (bench/unet_calls.py, full-size UNet), 5 memory and 6
# converter peak memory (bench/memory.py), 7 grouped masked attention against dense masked and unmasked (FLOP bounds,
# in-call ratios, peak memory; bench/grouped.py); bench/common.py holds the plumbing, bench/report.py the reporting.
# Usage: .venv/bin/python bench/run.py [--quick] [--device cpu|cuda] [--sections 1,2,3,4,5,6,7] [--out FILE]
# Prints a table and writes bench/RESULTS.md (machine, then per section: target, measured value, pass/fail).
# Everything runs on random weights (the host's own SD1.5 UNet class, our InstanceDiffusionModel): the speed of
# a matmul does not depend on the values.
import argparse
import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import REPO, build_instdiff, build_unet_model, setup  # noqa: E402
from bench.grouped import section7, section7_memory  # noqa: E402
from bench.memory import child_memory, section5, section6  # noqa: E402
from bench.report import Report, print_table, write_results  # noqa: E402
from bench.tokens_mis import section1, section4  # noqa: E402
from bench.unet_calls import section2_3  # noqa: E402


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
        self.res7 = [(32, 32), (32, 48)] if quick and not gpu else [(64, 64), (64, 96)]
        self.reps7 = 3 if gpu else 1
        self.rounds7 = 5 if gpu else 2
        self.mem7 = [(128, 128), (256, 256)]
        if os.environ.get("INSTDIFF_BENCH_SMOKE"):  # plumbing check only: tiny latents, single repeats
            self.res2, self.reps2_per_res, self.res3 = [(8, 8), (8, 16)], [1, 1], (8, 8)
            self.reps2, self.mis_steps, self.reps4, self.reps1, self.mem_latent = "1/1", 4, 1, 1, (8, 8)
            self.res7, self.mem7, self.rounds7 = [(8, 8), (8, 16)], [(16, 16)], 1


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
    parser.add_argument("--sections", default="1,2,3,4,5,6,7")
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
    need_big = bool({2, 3, 7} & set(args.sections))
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
        if {2, 3} & set(args.sections):
            guarded(rep, 2, section2_3, m, cfg, rep, big, 2 in args.sections, 3 in args.sections)
        if 7 in args.sections:
            guarded(rep, 7, section7_memory, m, cfg, rep, big["instdiff"])
            guarded(rep, 7, section7, m, cfg, rep, big)
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
