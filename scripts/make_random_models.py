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
    from scripts import random_models
    models = host_dir() / "models"
    stand_ins = [
        (models / "checkpoints" / CHECKPOINT, random_models.write_random_checkpoint, "full-size SD1.5 layout, ~2 GB"),
        (models / "instancediffusion" / INSTDIFF, random_models.write_random_instancediffusion, "official keys and shapes"),
        (models / "loras" / LORA, random_models.write_random_lora, "small SD1.5 LoRA"),
    ]
    for path, write, what in stand_ins:
        if args.force or not path.exists():
            print(f"[fixtures] writing {path} ({what}, random weights)", flush=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".partial")
            write(str(tmp), args.seed)
            tmp.rename(path)
    print(f"[fixtures] ready in {models}")


if __name__ == "__main__":
    main()
