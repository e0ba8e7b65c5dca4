"""Peak memory of `python -m instdiff_model.convert` on a full-size synthetic official-layout checkpoint."""
# Builds (in a child process) a .pth laid out like instancediffusion_sd15.pth: 'model' and 'ema' dicts with
# the 513 added keys at their real shapes (random values) plus the 686 base SD1.5 keys (real parameter
# count, views of one flat buffer each), an Adam-like optimizer state for the added parameters, and config
# objects; then converts it in a second child and prints that child's peak RSS divided by the file size.
# Usage: python bench/convert_memory.py [--workdir DIR] [--dtype fp16|fp32] [--keep]
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE_PARAMS = 859_520_964  # SD1.5 UNet parameters (instancediffusion_keys.tsv header)
BASE_KEYS = 686


def build(path: str) -> None:
    sys.path.insert(0, str(REPO))
    import torch

    from instdiff_model.checkpoint import expected_spec

    spec = expected_spec()
    g = torch.Generator().manual_seed(0)

    def added():
        return {k: torch.randn(shape, generator=g) * 0.02 for k, shape in spec.items()}

    def base():
        flat = torch.empty(BASE_PARAMS)  # never written: the pages stay unallocated in this builder
        per = BASE_PARAMS // BASE_KEYS
        return {f"base_block.{i}.weight": flat[i * per:(i + 1) * per] for i in range(BASE_KEYS)}

    model, ema = {**base(), **added()}, {**base(), **added()}
    n = sum(torch.Size(s).numel() for s in spec.values())
    moments = [torch.empty(n), torch.empty(n)]
    state, offset = {}, 0
    for i, shape in enumerate(spec.values()):
        size = torch.Size(shape).numel()
        state[i] = {"step": 1000, "exp_avg": moments[0][offset:offset + size].view(shape),
                    "exp_avg_sq": moments[1][offset:offset + size].view(shape)}
        offset += size
    ckpt = {"model": model, "ema": ema, "opt": {"state": state, "param_groups": [{"lr": 5e-5, "params": list(state)}]},
            "iters": 500_000, "config": {"model": {"target": "ldm.models.diffusion.ddpm.LatentDiffusion"}}}
    torch.save(ckpt, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--dtype", choices=["fp16", "fp32"], default="fp16")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic .pth and the output")
    parser.add_argument("--build", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(args.build)
        return 0
    src = Path(args.workdir) / "synthetic_instancediffusion_sd15.pth"
    out = Path(args.workdir) / "synthetic_instancediffusion.safetensors"
    try:
        t0 = time.time()
        subprocess.run([sys.executable, __file__, "--build", str(src)], check=True)
        t1 = time.time()
        child = subprocess.Popen([sys.executable, "-m", "instdiff_model.convert", str(src), str(out),
                                  "--dtype", args.dtype], cwd=REPO)
        _, status, usage = os.wait4(child.pid, 0)
        t2 = time.time()
        if status != 0:
            print("conversion failed", file=sys.stderr)
            return 1
        peak, size = usage.ru_maxrss * 1024, src.stat().st_size
        print(f"synthetic checkpoint {size / 2**30:.2f} GiB (built in {t1 - t0:.0f} s); converted to "
              f"{out.stat().st_size / 2**30:.2f} GiB {args.dtype} in {t2 - t1:.0f} s")
        print(f"converter peak RSS {peak / 2**30:.2f} GiB = {peak / size:.3f} x file size")
    finally:
        if not args.keep:
            for p in (src, out):
                p.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
