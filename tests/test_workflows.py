"""Every shipped workflow (UI format) converted like the frontend does and executed headless with the random stand-ins."""
import json
from pathlib import Path

import pytest
from PIL import Image

from scripts.headless import ui_to_api

WORKFLOWS = sorted((Path(__file__).resolve().parents[1] / "workflows").glob("*.json"))
STANDINS = {"ckpt_name": "random-sd15.safetensors", "model_name": "random-instancediffusion.safetensors",
            "lora_name": "random-lora-sd15.safetensors"}


def shrink(prompt: dict) -> dict:
    """Random stand-ins at a fraction of the cost: the same graph with 2 steps and 1/8 of the image size."""
    for node in prompt.values():
        inputs = node["inputs"]
        for key, value in STANDINS.items():
            if key in inputs:
                inputs[key] = value
        if "steps" in inputs:
            inputs["steps"] = 2
        if node["class_type"] in ("EmptyLatentImage", "ImageScale"):
            inputs["width"] //= 8
            inputs["height"] //= 8
    return prompt


def test_there_are_workflows_for_every_feature():
    names = {p.stem for p in WORKFLOWS}
    for part in ("boxes", "points", "scribbles", "polygons", "masks", "all_formats", "multi_instance_sampler",
                 "masked_attention", "with_lora", "sdxl_refiner_cascade"):
        assert f"instancediffusion_{part}" in names


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_shipped_workflow_runs(host, path):
    workflow = json.loads(path.read_text())
    assert any(n["type"] == "Note" for n in workflow["nodes"]), "every shipped workflow explains itself in a Note"
    prompt = shrink(ui_to_api(workflow, host.object_info))
    entry = host.run(prompt)
    saved = [p for nid, node in prompt.items() if node["class_type"] == "SaveImage"
             for p in host.output_files(entry, nid)]
    assert len(saved) == sum(n["class_type"] == "SaveImage" for n in prompt.values())
    for p in saved:
        with Image.open(p) as im:
            assert im.size[0] >= 64
