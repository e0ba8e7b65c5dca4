"""Convert InstanceDiffusion weights (official .pth, logtd split files) into one small safetensors file."""
import argparse
import os
import sys

import torch
from safetensors.torch import save_file

from .checkpoint import DEFAULT_WEIGHTS, read_weights
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
