"""Write the seeded random stand-ins into the host's models folders (skipped when already there)."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.hostenv import host_dir, import_pack  # noqa: E402

CHECKPOINT = "random-sd15.safetensors"
INSTDIFF = "random-instancediffusion.safetensors"
LORA = "random-lora-sd15.safetensors"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    import_pack()
    import importlib
    random_models = importlib.import_module("comfyui_instancediffusion.nodes.random_models")
    models = host_dir() / "models"
    ckpt = models / "checkpoints" / CHECKPOINT
    if args.force or not ckpt.exists():
        print(f"[fixtures] writing {ckpt} (full-size SD1.5 layout, random weights, ~2 GB)", flush=True)
        tmp = ckpt.with_suffix(".partial")
        random_models.write_random_checkpoint(str(tmp), args.seed)
        tmp.rename(ckpt)
    idf = models / "instancediffusion" / INSTDIFF
    if args.force or not idf.exists():
        idf.parent.mkdir(parents=True, exist_ok=True)
        print(f"[fixtures] writing {idf} (official keys and shapes, random weights)", flush=True)
        tmp = idf.with_suffix(".partial")
        random_models.write_random_instancediffusion(str(tmp), args.seed)
        tmp.rename(idf)
    lora = models / "loras" / LORA
    if args.force or not lora.exists():
        print(f"[fixtures] writing {lora} (small random SD1.5 LoRA)", flush=True)
        random_models.write_random_lora(str(lora), args.seed)
    print(f"[fixtures] ready in {models}")


if __name__ == "__main__":
    main()
