"""The main job: run the box-layout example workflow headless on the host and write its image and layout preview."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.headless import HostServer, ui_to_api  # noqa: E402
from scripts.hostenv import REPO, host_dir  # noqa: E402

WORKFLOW = REPO / "workflows" / "Boxes - InstanceDiffusion.json"
OUT = REPO / "out" / "demo"


def real_weights():
    """(checkpoint, instancediffusion file) a user put in the host's models folders, or None."""
    models = host_dir() / "models"
    pick = lambda folder, exts: sorted(p.name for p in (models / folder).glob("*")  # noqa: E731
                                       if p.suffix in exts and not p.name.startswith("random-"))
    ckpts = pick("checkpoints", {".safetensors", ".ckpt"})
    instdiff = pick("instancediffusion", {".safetensors", ".pth", ".ckpt"})
    sd15 = [c for c in ckpts if "v1-5" in c or "sd15" in c.lower() or "1.5" in c]
    return (sd15[0], instdiff[0]) if sd15 and instdiff else None


def main():
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_random_models.py")], check=True)
    real = real_weights()
    shutil.rmtree(OUT, ignore_errors=True)
    with HostServer(workdir=OUT) as host:
        prompt = ui_to_api(json.loads(WORKFLOW.read_text()), host.object_info)
        for node in prompt.values():
            inputs = node["inputs"]
            if node["class_type"] == "CheckpointLoaderSimple":
                inputs["ckpt_name"] = real[0] if real else "random-sd15.safetensors"
            if node["class_type"] == "LoadInstanceDiffusion":
                inputs["model_name"] = real[1] if real else "random-instancediffusion.safetensors"
            if not real and "steps" in inputs:
                inputs["steps"] = 4
            if not real and node["class_type"] == "EmptyLatentImage":
                inputs["width"], inputs["height"] = inputs["width"] // 2, inputs["height"] // 2
        if real:
            print(f"[demo] real weights: {real[0]} + {real[1]}")
        else:
            print("[demo] NO real weights found (an SD1.5 checkpoint in models/checkpoints and the InstanceDiffusion "
                  "weights in models/instancediffusion): using RANDOM STAND-INS at 256x256, 4 steps. The image will "
                  "be noise: this run checks the pipeline, not the picture.", flush=True)
        entry = host.run(prompt, timeout=3600)
        files = host.output_files(entry)
    print(f"[demo] workflow {WORKFLOW.name} finished; files in {OUT / 'output'}:")
    for f in files:
        print("   ", f)


if __name__ == "__main__":
    main()
