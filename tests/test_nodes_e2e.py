"""Our nodes end to end on the host (headless, tiny random SD1.5 + random InstanceDiffusion)."""
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from scripts.headless import PromptError
from tolerance import assert_rel_differs
from workflows_api import FORMATS, grounded_prompt, layout_json


def latent_of(host, entry, node):
    (path,) = host.output_files(entry, node, kind="latents")
    return load_file(path)["latent_tensor"]


@pytest.mark.parametrize("fmt", sorted(FORMATS) + ["masks", "mixed"])
def test_every_format_runs_to_an_image(host, fmt):
    instances = {"masks": [], "mixed": [inst for insts in FORMATS.values() for inst in insts[:1]]}.get(fmt, FORMATS.get(fmt))
    prompt, ids = grounded_prompt(instances, mask_instance=fmt in ("masks", "mixed"), plain_too=True)
    entry = host.run(prompt)
    (image,) = host.output_files(entry, ids["image"])
    (preview,) = host.output_files(entry, ids["preview"])
    with Image.open(image) as im, Image.open(preview) as pv:
        assert im.size == (128, 128) and pv.size == (128, 128)
    ours = latent_of(host, entry, ids["latent"])
    assert torch.isfinite(ours).all()
    assert_rel_differs(ours, latent_of(host, entry, ids["plain"]), 1e-3, "InstanceDiffusion")


def test_gate_off_and_scaleu_off_equals_the_plain_model(host):
    prompt, ids = grounded_prompt(FORMATS["boxes"], full=0.0, decay=0.0, scaleu=False, plain_too=True, preview=False)
    entry = host.run(prompt)
    plain = latent_of(host, entry, ids["plain"])
    assert torch.equal(latent_of(host, entry, ids["latent"]), plain)
    prompt, ids = grounded_prompt(FORMATS["boxes"], full=0.0, decay=0.0, scaleu=True, preview=False)
    scaleu_only = latent_of(host, host.run(prompt), ids["latent"])
    assert_rel_differs(scaleu_only, plain, 1e-3, "ScaleU alone")  # ScaleU alone already acts


def test_moving_an_instance_moves_the_difference(host):
    """With instance-masked attention, InstanceDiffusion's change to the latent follows the box: moving the box from
    the left edge to the right edge moves the column centroid of |grounded - plain| right (random weights spread
    it, so the shift is smaller than the box's 8 latent columns)."""
    centroids = []
    for x in (8, 72):
        prompt, ids = grounded_prompt([{"caption": "a cube", "box": [x, 40, 48, 48]}], masked=True, steps=1,
                                      scaleu=False, plain_too=True, preview=False)
        entry = host.run(prompt)
        diff = (latent_of(host, entry, ids["latent"]) - latent_of(host, entry, ids["plain"])).abs().sum((0, 1, 2))
        centroids.append(float((diff * torch.arange(diff.shape[0])).sum() / diff.sum()))
    assert centroids[1] - centroids[0] > 0.4, centroids


@pytest.mark.parametrize("masked", [False, True])
def test_grounding_changes_the_result(host, masked):
    prompt, ids = grounded_prompt(FORMATS["boxes"], masked=masked, plain_too=True, preview=False)
    entry = host.run(prompt)
    assert_rel_differs(latent_of(host, entry, ids["latent"]), latent_of(host, entry, ids["plain"]), 1e-3, "grounding")


def test_composes_with_another_model_patch(host):
    """FreeU on top of Apply: both patches still act (InstanceDiffusion made inert = Apply bypassed)."""
    freeu = lambda b, m: b.add("FreeU_V2", model=m[0], b1=1.3, b2=1.4, s1=0.9, s2=0.2)  # noqa: E731
    runs = {}
    for name, options in {"both": dict(extra_model_patch=freeu), "instancediffusion": {},
                          "freeu": dict(extra_model_patch=freeu, full=0.0, scaleu=False)}.items():
        prompt, ids = grounded_prompt(FORMATS["boxes"], preview=False, **options)
        runs[name] = latent_of(host, host.run(prompt), ids["latent"])
    assert_rel_differs(runs["both"], runs["instancediffusion"], 1e-3, "FreeU")
    assert_rel_differs(runs["both"], runs["freeu"], 1e-3, "InstanceDiffusion under FreeU")


@pytest.mark.parametrize("instances, fragment", [
    ([{"caption": "a cube", "box": [100, 100, 64, 64]}], "extends outside the 128x128 image"),
    ([], "the layout has no instances"),
    ([{"caption": "x", "box": [0, 0, 8, 8]}] * 31, "at most 30 instances; remove 1"),
    ([{"caption": "", "box": [0, 0, 8, 8]}], "caption: empty"),
])
def test_bad_layouts_name_the_fix(host, instances, fragment):
    prompt, _ = grounded_prompt(instances, preview=False)
    with pytest.raises(PromptError, match=fragment):
        host.run(prompt)


def test_per_frame_keyframes_batch_of_four(host):
    import json
    ball = lambda x: json.loads(layout_json([{"caption": "a ball", "box": [x, 40, 40, 40]}]))  # noqa: E731
    keyframes = json.dumps([{"frame": 0, "layout": ball(0)}, {"frame": 3, "layout": ball(84)}])
    prompt, ids = grounded_prompt(
        layout_node=lambda b: b.add("InstanceDiffusionLayoutKeyframes", keyframes=keyframes, frames=4), batch=4,
        preview_image=False, plain_too=True)
    entry = host.run(prompt)
    assert len(host.output_files(entry, ids["image"])) == 4
    diff = (latent_of(host, entry, ids["latent"]) - latent_of(host, entry, ids["plain"])).abs().amax((1, 2, 3))
    assert (diff > 1e-3).all(), "InstanceDiffusion made no difference to some frames"
    previews = host.output_files(entry, ids["preview"])
    assert len(previews) == 4
    # the ball moves right frame by frame: its outline's leftmost column grows
    import numpy as np
    from PIL import Image
    lefts = []
    for p in previews:
        with Image.open(p) as im:
            arr = np.asarray(im.convert("RGB")).astype(int)
        red = (arr[..., 0] > 200) & (arr[..., 1] < 60) & (arr[..., 2] < 100)
        lefts.append(int(np.nonzero(red.any(0))[0].min()))
    assert lefts == sorted(lefts) and lefts[-1] - lefts[0] > 60


def test_latent_of_another_aspect_is_refused(host):
    prompt, _ = grounded_prompt(FORMATS["boxes"], preview=False)
    for node in prompt.values():
        if node["class_type"] == "EmptyLatentImage":
            node["inputs"]["width"] = 256
    with pytest.raises(PromptError, match="aspect ratios differ"):
        host.run(prompt)
