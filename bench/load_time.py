"""Load time of a real-size official-layout instancediffusion_sd15.pth vs a safetensors file of the same tensors."""
# Builds (in a child process) a .pth laid out like the official file: 'model' and 'ema' dicts holding every key of
# the SD1.5 UNet (names and shapes from the random SD1.5 stand-in's header) and the 513 added keys at their real
# shapes (instancediffusion_keys.tsv), one storage per tensor, fp32, plus an Adam-like state of the added
# parameters, a config dict and the iteration count, saved by torch.save. Only 'ema''s added tensors get random
# values (the loader reads nothing else; the other bytes are zeros, which read at the same speed). Then times, each in
# a fresh child, the loader's read (read_weights) and a whole InstanceDiffusionModel.from_file of the .pth and of a
# safetensors copy of the 513 tensors (fp32 and fp16), cold (the file's pages dropped with posix_fadvise) and warm,
# and the loader's first load of the .pth (its cached safetensors copy written, then read).
# Usage: python bench/load_time.py [--workdir DIR] [--keep] [--sd15 models/checkpoints/random-sd15.safetensors]
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SD15 = REPO / ".host/ComfyUI/models/checkpoints/random-sd15.safetensors"
UNET = "model.diffusion_model."


def base_shapes(sd15: str) -> dict:
    """{official base key: shape} of the SD1.5 UNet (686 keys), read from a checkpoint's safetensors header."""
    with open(sd15, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    return {k[len(UNET):]: v["shape"] for k, v in header.items() if k.startswith(UNET)}


def build(path: str, sd15: str) -> None:
    sys.path.insert(0, str(REPO))
    import torch

    from instdiff_model.checkpoint import expected_spec

    spec, base = expected_spec(), base_shapes(sd15)
    g = torch.Generator().manual_seed(0)
    empty = lambda shape: torch.empty(shape)  # noqa: E731 (untouched pages: zeros on disk, no memory here)
    model = {k: empty(s) for k, s in {**base, **spec}.items()}
    ema = {**{k: empty(s) for k, s in base.items()},
           **{k: torch.randn(s, generator=g) * 0.02 for k, s in spec.items()}}
    state = {i: {"step": torch.tensor(500_000.0), "exp_avg": empty(s), "exp_avg_sq": empty(s)}
             for i, s in enumerate(spec.values())}
    ckpt = {"model": model, "ema": ema, "opt": {"state": state, "param_groups": [{"lr": 5e-5, "params": list(state)}]},
            "iters": 500_000, "config_dict": {"model": {"target": "ldm.models.diffusion.ldm.LatentDiffusion"}}}
    torch.save(ckpt, path)
    print(f"{len(model)} keys per state dict ({len(base)} base + {len(spec)} added)")


def drop_pages(path: str) -> None:
    """Evict the file from the page cache (as after a reboot) without touching other files."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def timed(path: str, what: str, dtype: str) -> None:
    """Child: one timed load, printed as JSON."""
    sys.path.insert(0, str(REPO))
    import torch

    from instdiff_model.checkpoint import read_weights
    from instdiff_model.model import InstanceDiffusionModel

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if what == "read":
        n = len(read_weights(path, dtype=getattr(torch, dtype)))
    elif what == "first":  # the loader's first load of a .pth: write the cached copy, then load from it
        import shutil
        from instdiff_model.convert import cached_copy
        cache = Path(path).parent / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        copy, _ = cached_copy([path], "ema", str(cache))
        n = len(InstanceDiffusionModel.from_file(copy, dtype=torch.float32).state_dict())
    else:
        n = len(InstanceDiffusionModel.from_file(path, dtype=torch.float32).state_dict())
    print(json.dumps({"s": time.perf_counter() - t0, "keys": n}))


def measure(path: Path, what: str, dtype: str, cold: bool) -> float:
    if cold:
        drop_pages(str(path))
    out = subprocess.run([sys.executable, __file__, "--time", str(path), what, dtype], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=tempfile.gettempdir())
    parser.add_argument("--sd15", default=str(SD15), help="any SD1.5 .safetensors checkpoint (only its header is read)")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic files")
    parser.add_argument("--build", help=argparse.SUPPRESS)
    parser.add_argument("--time", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(args.build, args.sd15)
        return 0
    if args.time:
        timed(*args.time)
        return 0
    src = Path(args.workdir) / "synthetic_instancediffusion_sd15.pth"
    files = {"pth": src, "safetensors fp32": Path(args.workdir) / "synthetic_instancediffusion_fp32.safetensors",
             "safetensors fp16": Path(args.workdir) / "synthetic_instancediffusion_fp16.safetensors"}
    try:
        if not src.exists():
            t0 = time.time()
            subprocess.run([sys.executable, __file__, "--build", str(src), "--sd15", args.sd15], check=True)
            print(f"built {src.stat().st_size / 1e9:.2f} GB in {time.time() - t0:.0f} s")
        for name, dtype in (("safetensors fp32", "fp32"), ("safetensors fp16", "fp16")):
            if not files[name].exists():
                t0 = time.time()
                subprocess.run([sys.executable, "-m", "instdiff_model.convert", str(src), str(files[name]),
                                "--dtype", dtype], check=True, cwd=REPO, capture_output=True)
                print(f"converted to {name} ({files[name].stat().st_size / 1e9:.2f} GB) in {time.time() - t0:.1f} s")
        print("| file | size | read_weights cold | warm | from_file cold | warm |\n|---|---|---|---|---|---|")
        for name, path in files.items():
            dtype = "float16" if name.endswith("fp16") else "float32"
            row = [measure(path, what, dtype, cold) for what in ("read", "model") for cold in (True, False)]
            print(f"| {name} | {path.stat().st_size / 1e9:.2f} GB | " + " | ".join(f"{s:.1f} s" for s in row) + " |")
        print(f"first load of the .pth through the loader's cache (write the copy, load it): cold "
              f"{measure(src, 'first', 'float32', True):.1f} s, warm {measure(src, 'first', 'float32', False):.1f} s")
    finally:
        if not args.keep:
            for p in files.values():
                p.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
