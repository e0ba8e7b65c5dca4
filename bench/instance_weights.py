#!/usr/bin/env python
"""Per-instance weights' cost: the 16 full-size fuser calls of one UNet call with all weights 1, one weight 1.5, and the direct fuser calls."""
# Usage: .venv/bin/python bench/instance_weights.py [--device cpu|cuda] [--latent 32] [--reps 5]
# `direct` calls each fuser the way the patch did before weights existed (FuserPatch._fuser without a weight map);
# `all 1` goes through FuserPatch.__call__ with a layout whose weights are all 1 (no map, no multiply);
# `weighted` has one instance at 1.5 (a per-token map, built once per token grid and cached, and two multiplies).
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import build_instdiff, conditioning, make_grounding, make_layout, med, setup, sync  # noqa: E402
from bench.unet_calls import fuser_level_list  # noqa: E402


def fuser_inputs(m, latent: int):
    """(index, x, extra_options) of the 16 fusers of a cond + uncond UNet call on a latent x latent latent."""
    import torch
    calls = []
    for index, (c, n) in enumerate(fuser_level_list(m, latent, latent)):
        side = int(round(n ** 0.5))
        x = torch.randn(2, n, c, device=m.device)
        calls.append((index, x, {"cond_or_uncond": [0, 1], "transformer_index": index, "sigmas": None,
                                 "original_shape": [2, 4, latent, latent], "activations_shape": [2, c, side, side]}))
    return calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--latent", type=int, default=32)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    import torch
    if args.device == "cpu":
        torch.set_num_threads(1)
    m = setup(args.device)
    instdiff = build_instdiff(m, 320)
    layout = make_layout(m, 10, "mixed", 8 * args.latent, 8 * args.latent)
    plain = make_grounding(m, instdiff, layout)
    layout.instances[0].weight = 1.5
    weighted = make_grounding(m, instdiff, layout)
    assert plain.weights is None and weighted.weights is not None
    patches = {name: m.patch.FuserPatch(instdiff, conditioning(m, g), lambda sigma: 1.0, False) for name, g in
               (("all 1", plain), ("weighted", weighted))}
    direct = m.patch.FuserPatch(instdiff, conditioning(m, plain), lambda sigma: 1.0, False)
    calls = fuser_inputs(m, args.latent)

    def run(name):
        sync(m.device)
        t = time.perf_counter()
        for index, x, opts in calls:
            if name == "direct":
                frames = torch.zeros(1, dtype=torch.long)
                objs = torch.cat([direct._tokens(True, frames, x), direct._tokens(False, frames, x)])
                direct._fuser(index, x, objs, 1.0, None)
            else:
                patches[name](x, opts)
        sync(m.device)
        return time.perf_counter() - t

    times = {name: [] for name in ("direct", "all 1", "weighted")}
    for name in times:
        run(name)  # warm: token and weight-map caches, allocator
    for _ in range(args.reps):  # interleaved, so a load change hits every configuration alike
        for name in times:
            times[name].append(run(name))
    base = min(times["direct"])
    for name, ts in times.items():  # the fastest repeat: the least disturbed by other jobs on the machine
        print(f"[weights] latent {args.latent}x{args.latent}, 16 fusers, cond+uncond, {args.device}: {name:8s} "
              f"{min(ts) * 1e3:8.1f} ms  ratio {min(ts) / base:.3f}  (fastest of {args.reps}, median "
              f"{med(ts) * 1e3:.1f} ms)")
    frames, patch = torch.zeros(1, dtype=torch.long), patches["all 1"]
    t = time.perf_counter()
    for _ in range(10000):  # all the all-1 path adds to a fuser call: the weights check (and an empty kwargs dict)
        patch._weights(frames, None, None, calls[0][1])
    extra = 16 * (time.perf_counter() - t) / 10000
    print(f"[weights] all 1: the weight path adds {extra * 1e6:.1f} us per UNet call (16 fusers) = "
          f"{extra / base:.2e} of the fusers' {base * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
