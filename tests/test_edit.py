"""The edit workflows headless on the host: outside the edit mask the first result stays exact, inside it edits."""
# Every stage of the shipped "edit one instance" and "iterative generation" workflows (random stand-in weights, 3
# steps, 1/8 size): latent-exact outside the Layout Difference mask before decoding, pixel-exact after the
# composite, different inside; with the multi-instance sampler and the stock KSampler, on fp32 and fp16 UNets.
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from scripts.headless import ui_to_api
from test_workflows import load, shipped
from workflows_api import instancediffusion_off

EDIT, ITERATIVE = (shipped(f"instancediffusion_{name}") for name in ("edit_one_instance", "iterative_generation"))


def stock_ksampler(prompt: dict) -> dict:
    """The same graph with every multi-instance sampler replaced by the stock KSampler (our patch alone)."""
    for node in prompt.values():
        if node["class_type"] == "InstanceDiffusionKSampler":
            node["class_type"] = "KSampler"
            for key in ("mis", "max_batch"):
                node["inputs"].pop(key)
    return prompt


def add(prompt: dict, class_type: str, **inputs) -> str:
    nid = str(max(int(k) for k in prompt) + 1)
    prompt[nid] = {"class_type": class_type, "inputs": inputs}
    return nid


def with_savers(prompt: dict) -> list:
    """Savers for every edit stage: [(previous latent, edited latent, mask image, previous image, edited image)],
    the SaveLatent / SaveImage node ids added to `prompt` (existing SaveImage nodes are reused)."""
    saved_images = {tuple(n["inputs"]["images"]): nid for nid, n in prompt.items() if n["class_type"] == "SaveImage"}
    stages = []
    for nid, node in sorted(prompt.items(), key=lambda item: int(item[0])):
        if node["class_type"] != "LatentCompositeMasked":
            continue
        (image,) = [i for i, n in prompt.items()
                    if n["class_type"] == "ImageCompositeMasked" and n["inputs"]["mask"] == node["inputs"]["mask"]]
        before = node["inputs"]["destination"]
        stages.append((add(prompt, "SaveLatent", samples=before, filename_prefix="latents/before"),
                       add(prompt, "SaveLatent", samples=[nid, 0], filename_prefix="latents/after"),
                       add(prompt, "SaveImage", filename_prefix="mask",
                           images=[add(prompt, "MaskToImage", mask=node["inputs"]["mask"]), 0]),
                       saved_images[tuple(prompt[image]["inputs"]["destination"])], saved_images[(image, 0)]))
    return stages


def run_stages(host, prompt):
    stages = with_savers(prompt)
    entry = host.run(prompt)

    def latent(nid):
        (path,) = host.output_files(entry, nid, kind="latents")
        return load_file(path)["latent_tensor"]

    def image(nid):
        (path,) = host.output_files(entry, nid)
        with Image.open(path) as im:
            return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32))

    return [(latent(a), latent(b), image(m)[..., 0] / 255, image(i), image(j)) for a, b, m, i, j in stages]


def outside(mask: torch.Tensor, shape) -> torch.Tensor:
    """Where the host's bilinear resizing of `mask` (SetLatentNoiseMask, the composites) to `shape` is exactly 0."""
    return torch.nn.functional.interpolate(mask[None, None], size=tuple(shape), mode="bilinear")[0, 0] == 0


def check_stage(before, after, mask, first_image, edited_image):
    keep = outside(mask, before.shape[-2:])
    assert 0 < int(keep.sum()) < keep.numel(), "the edit mask must cover part of the latent"
    assert torch.equal(after[..., keep], before[..., keep]), "the latent changed outside the edit mask"
    assert (after[..., ~keep] - before[..., ~keep]).abs().max() > 1e-3 * before.abs().max(), "nothing was edited"
    pixels = outside(mask, first_image.shape[:2])
    assert torch.equal(edited_image[pixels], first_image[pixels]), "pixels changed outside the edit mask"
    assert (edited_image[~pixels] - first_image[~pixels]).abs().max() > 2, "the edited image equals the first one"


def tiny(prompt: dict, host_dtype=False) -> dict:
    """The graph on the tiny random UNet (32 channels, in the host's loader dtype if host_dtype) and the formula
    InstanceDiffusion weights at its width, 3 steps at 128x128 (a quarter of the shipped size)."""
    for node in prompt.values():
        kind, inputs = node["class_type"], node["inputs"]
        if kind == "CheckpointLoaderSimple":
            node.update(class_type="InstDiffTestRandomTinySD15",
                        inputs=dict(seed=1, model_channels=32, host_dtype=host_dtype))
        elif kind == "LoadInstanceDiffusion":
            node.update(class_type="InstDiffTestRandomInstanceDiffusion", inputs=dict(salt="tiny", model_channels=32))
        elif kind == "EmptyLatentImage":
            inputs.update(width=inputs["width"] // 4, height=inputs["height"] // 4)
        if "steps" in inputs:
            inputs["steps"] = 3
    return prompt


def edit_prompt(host, path=EDIT, plain=False, moved_x=None, host_dtype=False):
    prompt = tiny(ui_to_api(load(path), host.object_info), host_dtype)
    if moved_x is not None:  # the second layout's moved balloon placed elsewhere
        layouts = [nid for nid, n in prompt.items() if n["class_type"] == "InstanceDiffusionLayout"]
        second = prompt[max(layouts, key=int)]
        doc = json.loads(second["inputs"]["layout_json"])
        doc["instances"][2]["box"][0] = moved_x
        second["inputs"]["layout_json"] = json.dumps(doc)
    return stock_ksampler(prompt) if plain else prompt


@pytest.mark.parametrize("plain", [False, True], ids=["mis", "stock_ksampler"])
def test_edit_one_instance_keeps_the_rest_exactly(host, plain):
    (stage,) = run_stages(host, edit_prompt(host, plain=plain))
    check_stage(*stage)


def test_the_edit_follows_the_moved_box_and_is_grounded(host):
    """Moving the balloon's new box right moves the column centroid of the edit's change right; the re-run's
    grounding acts (its Apply made inert changes the result inside the mask)."""
    centroids = []
    for x in (40, 200):
        ((before, after, *_),) = run_stages(host, edit_prompt(host, moved_x=x))
        diff = (after - before).abs().sum((0, 1, 2))
        centroids.append(float((diff * torch.arange(diff.shape[0])).sum() / diff.sum()))
    assert centroids[1] - centroids[0] > 0.4, centroids
    prompt = edit_prompt(host)
    last_apply = max((nid for nid, n in prompt.items() if n["class_type"] == "ApplyInstanceDiffusion"), key=int)
    inert = json.loads(json.dumps(prompt))
    inert[last_apply] = instancediffusion_off({last_apply: prompt[last_apply]})[last_apply]
    ((_, grounded, *_),), ((_, off, *_),) = run_stages(host, prompt), run_stages(host, inert)
    assert (grounded - off).abs().max() > 1e-3 * grounded.abs().max(), "the re-run's InstanceDiffusion did nothing"


def test_iterative_generation_adds_an_instance_per_stage_keeping_the_earlier_ones(host):
    stages = run_stages(host, edit_prompt(host, ITERATIVE))
    assert len(stages) == 2
    for stage in stages:
        check_stage(*stage)
    assert torch.equal(stages[1][0], stages[0][1]), "each stage starts from the previous stage's latent"


def test_edit_one_instance_on_an_fp16_unet(host, fp16_host):
    """The host stores the UNet in fp16 (on a CPU it computes in fp32 by manual cast: the result differs from the
    fp32 UNet's), and the edit keeps the rest exactly all the same."""
    (stage,) = run_stages(fp16_host, edit_prompt(fp16_host, host_dtype=True))
    assert all(torch.isfinite(t).all() for t in stage)
    check_stage(*stage)
    ((first32, *_),) = run_stages(host, edit_prompt(host))  # the fp32 run of the first test (the host's cache)
    assert not torch.equal(stage[0], first32), "the fp16 host ran the UNet as the fp32 one"
