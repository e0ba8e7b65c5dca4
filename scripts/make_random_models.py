"""Write the seeded random stand-ins into the host's models folders (skipped when already there)."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.hostenv import host_dir, import_pack  # noqa: E402

CHECKPOINT = "random-sd15.safetensors"
INSTDIFF = "random-instancediffusion.safetensors"
LORA = "random-lora-sd15.safetensors"
LORA_TINY = "random-lora-tiny-sd15.safetensors"  # for the tiny test UNet (base width 32) of tests/host_nodes
# ComfyUI-Manager's layout of logtd's split files, under models/ (the single-file stand-in's weights)
MANAGER_SPLIT = {"fusers.ckpt": "instance_models/fuser_models/fusers.ckpt",
                 "position_net.ckpt": "instance_models/positionnet_models/position_net.ckpt",
                 "scaleu.ckpt": "instance_models/scaleu_models/scaleu.ckpt"}


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
        (models / "loras" / LORA_TINY, lambda path, seed: random_models.write_random_lora(path, seed, model_channels=32),
         "a LoRA for the tiny test UNet"),
    ]
    for path, write, what in stand_ins:
        if args.force or not path.exists():
            print(f"[fixtures] writing {path} ({what}, random weights)", flush=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".partial")
            write(str(tmp), args.seed)
            tmp.rename(path)
    split = {name: models / rel for name, rel in MANAGER_SPLIT.items()}
    if args.force or not all(p.exists() for p in split.values()):
        print(f"[fixtures] writing {models / 'instance_models'} (ComfyUI-Manager's split files, random weights)", flush=True)
        tmp = {name: p.with_suffix(".partial") for name, p in split.items()}
        for p in tmp.values():
            p.parent.mkdir(parents=True, exist_ok=True)
        random_models.write_split_instancediffusion(str(models / "instancediffusion" / INSTDIFF), tmp)
        for name, p in tmp.items():
            p.rename(split[name])
    print(f"[fixtures] ready in {models}")


if __name__ == "__main__":
    main()
