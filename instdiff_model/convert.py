"""Convert InstanceDiffusion weights (official .pth, logtd split files) into one small safetensors file, or a cached copy."""
import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .checkpoint import DEFAULT_WEIGHTS, expected_spec, read_weights
from .errors import InstDiffError

DTYPES = {"fp16": torch.float16, "fp32": torch.float32}


def convert(inputs, output, weights: str = DEFAULT_WEIGHTS, dtype: str = "fp16", spec=None) -> dict:
    """Read the 513 added parameters from `inputs` (validated against `spec`), write them to `output`."""
    if dtype not in DTYPES:
        raise InstDiffError(f"dtype must be one of {sorted(DTYPES)}, not {dtype!r}")
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if any(os.path.abspath(p) == os.path.abspath(output) for p in inputs):
        raise InstDiffError("the output file must differ from the input files")
    sd = read_weights(inputs, weights=weights, dtype=DTYPES[dtype], spec=spec)
    metadata = {
        "format": "instancediffusion",
        "sources": ",".join(os.path.basename(str(p)) for p in inputs),
        "weights": weights,
        "dtype": dtype,
        "keys": str(len(sd)),
    }
    tmp = f"{output}.tmp"
    save_file({k: v.contiguous() for k, v in sd.items()}, tmp, metadata=metadata)
    os.replace(tmp, output)
    return {**metadata, "keys": len(sd), "parameters": sum(v.numel() for v in sd.values()),
            "bytes": os.path.getsize(output)}


CACHE_VERSION = "1"
CACHE_FREE_MARGIN = 256 << 20  # bytes left free on the cache's disk beyond the copy itself


def cache_name(paths, weights: str) -> str:
    """`<first source's stem>.<weights>.<8 hex of the sources' real paths>.safetensors`."""
    digest = hashlib.sha256("\n".join(os.path.realpath(p) for p in paths).encode()).hexdigest()[:8]
    return f"{os.path.splitext(os.path.basename(paths[0]))[0]}.{weights}.{digest}.safetensors"


def _stamp(paths) -> str:
    return json.dumps([[os.path.realpath(p), os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in paths])


def cached_copy(paths, weights: str, cache_dir: str, progress=None, spec=None) -> tuple:
    """(path, "") of a safetensors copy of the weights in `paths` (torch files) kept in `cache_dir`, written now
    (the source's dtype, so exact) unless one made from the same sources (real path, size, mtime) is there; or
    (None, why) when it cannot be written (then read `paths` directly). `progress(done, total)` while writing."""
    target = os.path.join(cache_dir, cache_name(paths, weights))
    stamp = _stamp(paths)
    try:
        with safe_open(target, framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("source_stamp") == stamp and meta.get("cache_version") == CACHE_VERSION:
            return target, ""
    except Exception:  # missing, truncated or not safetensors: write it again
        pass
    try:
        os.makedirs(cache_dir, exist_ok=True)
        free = shutil.disk_usage(cache_dir).free
    except OSError as e:
        return None, f"cannot use the cache folder {cache_dir}: {e}"
    spec = expected_spec() if spec is None else spec
    if free < sum(math.prod(s) for s in spec.values()) * 4 + CACHE_FREE_MARGIN:
        return None, f"only {free / 2**30:.1f} GiB free in {cache_dir}"
    tmp = f"{target}.{os.getpid()}.tmp"
    logging.info("InstanceDiffusion: writing %s, a safetensors copy of %s read by later loads", target,
                 ", ".join(map(str, paths)))
    try:
        with open(tmp, "wb"):
            pass
        read = None if progress is None else (lambda done, total: progress(done, total + total // 8))
        sd = read_weights(paths, weights=weights, spec=spec, progress=read)
        total = sum(v.numel() * v.element_size() for v in sd.values())
        save_file({k: v.contiguous() for k, v in sd.items()}, tmp, metadata={
            "format": "instancediffusion", "weights": weights, "sources": ",".join(map(os.path.basename, paths)),
            "source_stamp": stamp, "cache_version": CACHE_VERSION})
        os.replace(tmp, target)
    except OSError as e:
        return None, f"cannot write {target}: {e}"
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    if progress is not None:
        progress(total + total // 8, total + total // 8)
    return target, ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m instdiff_model.convert", description=__doc__)
    parser.add_argument("inputs", nargs="+", help="instancediffusion_sd15.pth, or logtd's fusers/position_net/scaleu.ckpt")
    parser.add_argument("output", help="output .safetensors")
    parser.add_argument("--weights", choices=["ema", "model"], default=DEFAULT_WEIGHTS,
                        help="which state dict of the official .pth (official inference uses 'ema')")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp16")
    args = parser.parse_args(argv)
    try:
        info = convert(args.inputs, args.output, args.weights, args.dtype)
    except InstDiffError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}: {info['keys']} tensors, {info['parameters']:,} parameters, {info['dtype']}, "
          f"'{info['weights']}' weights from {info['sources']} ({info['bytes'] / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
