"""Every shipped workflow (UI format), converted as the frontend does, run headless on the random stand-ins."""
# Each run also checks that InstanceDiffusion acts (Apply made inert changes the latent, moving the instances too).
# "Acts": the latents differ by more than 1e-4 of their magnitude, 1000x fp32 rounding (full-size random stand-ins).
import json
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file

from scripts.build_workflows import TITLES, file_stem
from scripts.headless import ui_to_api
from scripts.make_random_models import CHECKPOINT, INSTDIFF, LORA, LORA_TINY
from tolerance import assert_rel_differs
from workflows_api import instancediffusion_off, mirrored, on_tiny_models, save_latent_after

WORKFLOWS = sorted((Path(__file__).resolve().parents[1] / "workflows").glob("*.json"))
STANDINS = {"ckpt_name": CHECKPOINT, "model_name": INSTDIFF, "lora_name": LORA}
# Run on the full-size stand-ins through the shipped loaders (the weights files as a user has them); the others run on
# the tiny test UNet and formula weights at its width (a full-size run costs ~30 s on 2 cores, a tiny one ~3 s): what
# they test is the graph (nodes, links, widgets, InstanceDiffusion acting), which the tiny models run the same way.
FULL_SIZE = {"instancediffusion_official_settings"}
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
IDS = {file_stem(workflow_id): workflow_id for workflow_id in TITLES}  # shipped file stem -> workflow id


def workflow_id(path: Path) -> str:
    """The workflow id of a shipped file (its test id: file names are titles with spaces)."""
    return IDS[path.stem]


def shipped(workflow: str) -> Path:
    """The shipped file of a workflow id."""
    return WORKFLOWS[0].with_name(file_stem(workflow) + ".json")


def shrink(prompt: dict) -> dict:
    """Random stand-ins at a fraction of the cost: the same graph with 3 steps (the multi-instance sampler's 0.36
    still covers one), 1/8 of the image size and at most 2 frames."""
    for node in prompt.values():
        inputs = node["inputs"]
        for key, value in STANDINS.items():
            if key in inputs:
                inputs[key] = value
        if "steps" in inputs:
            inputs["steps"] = 3
        if node["class_type"] in ("EmptyLatentImage", "ImageScale"):
            inputs["width"] //= 8
            inputs["height"] //= 8
        if "batch_size" in inputs:  # a keyframed video layout: 2 frames of it (its layout frames follow)
            inputs["batch_size"] = min(inputs["batch_size"], 2)
        if node["class_type"] == "InstanceDiffusionLayoutKeyframes":
            inputs["frames"] = min(inputs["frames"], 2)
    return prompt


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def by_type(workflow: dict, type_: str) -> list:
    return [n for n in workflow["nodes"] if n["type"] == type_]


def source_type(workflow: dict, node: dict, input_name: str) -> str:
    """Type of the node feeding `input_name` of `node`."""
    (link,) = [i["link"] for i in node["inputs"] if i["name"] == input_name]
    (src,) = [l[1] for l in workflow["links"] if l[0] == link]
    return next(n["type"] for n in workflow["nodes"] if n["id"] == src)


def test_there_are_workflows_for_every_feature():
    names = {workflow_id(p) for p in WORKFLOWS}
    for part in ("official_settings", "boxes", "points", "scribbles", "polygons", "masks", "all_formats",
                 "multi_instance_sampler", "masked_attention", "with_lora", "sdxl_refiner_cascade",
                 "edit_one_instance", "iterative_generation"):
        assert f"instancediffusion_{part}" in names


def test_official_settings_workflow_has_the_official_values():
    """inference.py: mis 0.36, 50 steps, guidance 7.5, alpha 0.8 as its README demos pass (type [alpha, 0, 1-alpha])."""
    wf = load(shipped("instancediffusion_official_settings"))
    (sampler,) = by_type(wf, "InstanceDiffusionKSampler")
    seed, _, steps, cfg, sampler_name, scheduler, denoise, mis, max_batch = sampler["widgets_values"]
    assert (steps, cfg, sampler_name, scheduler, denoise, mis) == (50, 7.5, "ddim", "ddim_uniform", 1.0, 0.36)
    (apply,) = by_type(wf, "ApplyInstanceDiffusion")
    assert apply["widgets_values"] == [0.8, 0.0, True, False, 1.0]  # strength 1: the official model
    assert by_type(wf, "LoadInstanceDiffusion")[0]["widgets_values"][0] == "instancediffusion_sd15.pth"
    assert by_type(wf, "CheckpointLoaderSimple")[0]["widgets_values"] == ["v1-5-pruned-emaonly-fp16.safetensors"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_multi_instance_workflows_use_the_multi_instance_sampler(path):
    wf = load(path)
    layouts = by_type(wf, "InstanceDiffusionLayout")
    instances = sum(len(json.loads(n["widgets_values"][3])["instances"]) for n in layouts)
    instances += len(by_type(wf, "InstanceDiffusionAddMask"))
    note = " ".join(n["widgets_values"][0] for n in by_type(wf, "Note"))
    if instances > 1 and not by_type(wf, "InstanceDiffusionKSampler"):
        assert "stock KSampler because" in note, f"{path.stem}: say in its note why it does not use MIS"


def test_lora_workflow_tokenizer_takes_the_checkpoints_own_clip():
    wf = load(shipped("instancediffusion_with_lora"))
    (tok,) = by_type(wf, "InstanceDiffusionTokenizer")
    assert source_type(wf, tok, "clip") == "CheckpointLoaderSimple"
    assert {source_type(wf, n, "clip") for n in by_type(wf, "CLIPTextEncode")} == {"LoraLoader"}


def latent(host, entry, node):
    (path,) = host.output_files(entry, node, kind="latents")
    return load_file(path)["latent_tensor"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_id)
def test_shipped_workflow_runs_and_instancediffusion_acts(host, path):
    workflow = load(path)
    missing = {n["type"] for n in workflow["nodes"]} - set(host.object_info) - FRONTEND_ONLY
    if missing:
        pytest.skip(f"needs node types this host does not have: {sorted(missing)}")
    assert by_type(workflow, "Note"), "every shipped workflow explains itself in a Note"
    prompt = shrink(ui_to_api(workflow, host.object_info))
    if workflow_id(path) not in FULL_SIZE:
        prompt = on_tiny_models(prompt, LORA_TINY)
    saver = save_latent_after(prompt)
    entry = host.run(prompt)
    batch = max([n["inputs"].get("batch_size", 1) for n in prompt.values()] + [1])
    per_node = {nid: host.output_files(entry, nid) for nid, node in prompt.items() if node["class_type"] == "SaveImage"}
    assert all(len(files) in (1, batch) for files in per_node.values()), per_node  # one image per frame
    saved = [p for files in per_node.values() for p in files]
    for p in saved:
        with Image.open(p) as im:
            assert im.size[0] >= 64
    ours = latent(host, entry, saver)
    off = latent(host, host.run(instancediffusion_off(prompt)), saver)
    assert_rel_differs(ours, off, 1e-4, "InstanceDiffusion")
    moved = latent(host, host.run(mirrored(prompt)), saver)
    assert_rel_differs(moved, ours, 1e-4, "moving the instances")
    if any(n["class_type"] == "LoraLoader" for n in prompt.values()):
        no_lora = json.loads(json.dumps(prompt))
        for node in no_lora.values():
            if node["class_type"] == "LoraLoader":
                node["inputs"].update(strength_model=0.0, strength_clip=0.0)
        assert_rel_differs(latent(host, host.run(no_lora), saver), ours, 1e-4, "the LoRA")
