"""Reliability on the host: bad inputs name the fix, hostile files are refused, no state is left, runs repeat."""
# Bad inputs end in one message naming the fix, hostile files are refused at the loader node, runs leave no state
# behind (patches, grounding, interrupts, memory), and sampling is deterministic.
#
# Bad inputs already covered elsewhere are listed in the README troubleshooting section with the test that covers each.
import importlib
import json
import os
import shutil
import struct
import subprocess
import threading
import time
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from scripts.headless import PromptError
from scripts.hostenv import host_dir
from workflows_api import FORMATS, grounded_prompt, layout_json

TRACE_MARKERS = ("Traceback", 'File "', "RuntimeError", "KeyError", "AttributeError", "IndexError")


def latent_of(host, entry, node):
    (path,) = host.output_files(entry, node, kind="latents")
    return load_file(path)["latent_tensor"]


def lean(prompt, ids):
    """Drop the VAE decode and image saving: the saved latent is what the tests compare (saves time)."""
    for nid in list(prompt):
        if prompt[nid]["class_type"] in ("VAEDecode", "SaveImage", "InstanceDiffusionLayoutPreview"):
            del prompt[nid]
    return prompt, ids


def cached_nodes(entry) -> set:
    nodes = set()
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_cached":
            nodes.update(str(n) for n in data.get("nodes", []))
    return nodes


def run_latent(host, prompt, ids):
    entry = host.run(prompt)
    assert str(ids["sampled"]) not in cached_nodes(entry), "the sampler must really run, not come from the cache"
    return latent_of(host, entry, ids["latent"])


def refuse(host, prompt, fragment):
    """The prompt fails at a node with `fragment` in its one-line message and no Python trace."""
    with pytest.raises(PromptError) as info:
        host.run(prompt)
    msg = str(info.value)
    assert fragment in msg, msg
    assert not any(m in msg for m in TRACE_MARKERS), msg
    return msg


def rss_kb(host) -> int:
    for line in Path(f"/proc/{host.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ------------------------------------------------------------------------------------------ bad layouts

def mask_prompt(width, height, mask_w, mask_h, value):
    """A layout whose only instance is an AddMask node fed a SolidMask of the given size and value."""
    def layout_node(b):
        base = b.add("InstanceDiffusionLayout", width=width, height=height, caption="a scene",
                     layout_json=layout_json([], width, height))
        mask = b.add("SolidMask", value=value, width=mask_w, height=mask_h)
        return b.add("InstanceDiffusionAddMask", layout=base[0], caption="a blob", mask=mask[0], threshold=0.5)
    return lean(*grounded_prompt(layout_node=layout_node, preview=False, steps=1))[0]


@pytest.mark.parametrize("instances, fragment", [
    ([{"caption": "a cube", "box": [10, 10, 0, 30]}], "instance 0 box: zero or negative area (0 x 30); give a positive width and height"),
    ([{"caption": "a cube", "box": [-4, 10, 20, 30]}], "extends outside the 128x128 image; shrink or move it"),
    ([{"caption": "a cat", "point": [130, 40]}], "instance 0 point: (130, 40) lies outside the 128x128 image; move it inside [0, 128] x [0, 128]"),
    ([{"caption": "a road", "polygon": [[10, 10], [50, 50]]}], "instance 0 polygon ring 0: has 2 point(s), a polygon needs at least 3; add vertices or remove it"),
    ([{"caption": "a road", "scribble": [[10, 10], [500, 50]]}], "instance 0 scribble stroke 0: (500, 50) lies outside"),
    ([{"caption": "a rug", "mask": {"size": [128, 128], "counts": [128 * 128]}}], "instance 0 mask: empty (all zero); paint the instance or remove the mask"),
    ([{"caption": "a rug", "mask": {"size": [64, 64], "counts": [10, 4086]}}], "resize the mask to the image size"),
    ([{"caption": "a cube"}], "instance 0 ('a cube'): no location; give a box, point, scribble, polygon or mask"),
])
def test_bad_instance_in_layout_json_is_refused_at_the_layout_node(host, instances, fragment):
    prompt, _ = lean(*grounded_prompt(instances, preview=False, steps=1))
    msg = refuse(host, prompt, fragment)
    assert msg.startswith("InstanceDiffusionLayout:")


@pytest.mark.parametrize("mask_size, value, fragment", [
    ((128, 128), 0.0, "instance 0 mask: empty (all zero); paint the instance or remove the mask"),
    ((96, 128), 1.0, "instance 0 mask: size 128x96 (HxW) differs from the image 128x128; resize the mask to the image size"),
])
def test_add_mask_node_refuses_empty_or_wrong_size_masks(host, mask_size, value, fragment):
    msg = refuse(host, mask_prompt(128, 128, *mask_size, value), fragment)
    assert msg.startswith("InstanceDiffusionAddMask:")


@pytest.mark.parametrize("text, fragment", [
    (json.dumps({"schema": "instdiff.layout", "version": 7, "instances": []}),
     "unknown layout schema version 7; this build reads version 1"),
    (json.dumps({"schema": "someone.else", "version": 1}), 'layout "schema" must be "instdiff.layout"'),
    ('{"schema": "instdiff.layout", "version": 1, "instances": [', "layout_json is not valid JSON"),
    ("[1, 2, 3]", 'layout must be a JSON object with "schema": "instdiff.layout"'),
    (json.dumps({"schema": "instdiff.layout", "version": 1, "instances": [{"caption": "a", "box": [0, 0, 5, 5], "size": 3}]}),
     "instance 0: unknown field(s) ['size']"),
])
def test_malformed_or_unknown_layout_json_is_refused(host, text, fragment):
    prompt, _ = lean(*grounded_prompt(FORMATS["boxes"], preview=False, steps=1))
    (node,) = [n for n in prompt.values() if n["class_type"] == "InstanceDiffusionLayout"]
    node["inputs"]["layout_json"] = text
    refuse(host, prompt, fragment)


def test_add_nodes_refuse_bad_shapes_and_captions(host):
    def chain(node_type, **inputs):
        def layout_node(b):
            base = b.add("InstanceDiffusionLayout", width=128, height=128, caption="a scene",
                         layout_json=layout_json([]))
            return b.add(node_type, layout=base[0], **inputs)
        return lean(*grounded_prompt(layout_node=layout_node, preview=False, steps=1))[0]

    refuse(host, chain("InstanceDiffusionAddShape", caption="a road", kind="polygon", points="1,1 50,50"),
           "has 2 point(s), a polygon needs at least 3")
    refuse(host, chain("InstanceDiffusionAddShape", caption="a road", kind="scribble", points="1,1 x"),
           "cannot read 'x'; write points as 'x,y' pairs")
    refuse(host, chain("InstanceDiffusionAddPoint", caption="a cat", x=300, y=5), "lies outside the 128x128 image")
    refuse(host, chain("InstanceDiffusionAddBox", caption="   ", x=0, y=0, width=10, height=10),
           "caption: empty; give every instance a short description")
    refuse(host, chain("InstanceDiffusionAddBox", caption="a cube", x=100, y=0, width=64, height=10),
           "extends outside the 128x128 image")


def test_failed_runs_leave_the_model_unchanged(host):
    """An aspect refusal mid-sampling, then the same workflow at the right size equals the run before it."""
    good, ids = lean(*grounded_prompt(FORMATS["boxes"], preview=False, steps=1, seed=11))
    before = run_latent(host, good, ids)
    bad = json.loads(json.dumps(good))
    for node in bad.values():
        if node["class_type"] == "EmptyLatentImage":
            node["inputs"]["width"] = 192
    refuse(host, bad, "aspect ratios differ")
    # a refused layout after a successful grounding: the grounding of the last good run must not survive it
    refuse(host, lean(*grounded_prompt([{"caption": "x", "point": [999, 1]}], preview=False, steps=1))[0], "lies outside")
    assert torch.equal(run_latent(host, good, ids), before)


# ------------------------------------------------------------------------------------------ loader: bad files

@pytest.fixture(scope="module")
def model_dir():
    folder = host_dir() / "models" / "instancediffusion"
    yield folder
    for path in folder.glob("random-bad-*"):
        path.unlink()


def loader_prompt(name):
    prompt, ids = lean(*grounded_prompt(FORMATS["boxes"], preview=False, steps=1))
    for node in prompt.values():
        if node["class_type"] == "InstDiffTestRandomInstanceDiffusion":
            node["class_type"] = "LoadInstanceDiffusion"
            node["inputs"] = {"model_name": name, "weights": "ema"}
    return prompt


def _safetensors_parts(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return header, 8 + n


def _rewrite_header(src, dst, header, data_start):
    """Copy `src` with a new JSON header (the tensor bytes are copied unchanged)."""
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fout.write(struct.pack("<Q", len(raw)) + raw)
        fin.seek(data_start)
        shutil.copyfileobj(fin, fout, 16 << 20)


def test_loader_node_refuses_bad_files(host, model_dir):
    good = model_dir / "random-instancediffusion.safetensors"
    header, start = _safetensors_parts(good)
    # one key renamed (missing + unexpected) and one reshaped with the same byte count (wrong shape)
    keys = dict(header)
    keys["scaleu_b_3_extra"] = keys.pop("scaleu_b_3")
    bias = "middle_block.1.transformer_blocks.0.fuser.linear.bias"
    n = keys[bias]["shape"][0]
    keys[bias] = dict(keys[bias], shape=[n // 2, 2])
    _rewrite_header(good, model_dir / "random-bad-keys.safetensors", keys, start)
    # the first MiB only (header intact, tensor data missing), a garbled header, a cut .pth, a plain SD1.5 file
    with open(good, "rb") as f:
        head = f.read(1 << 20)
    (model_dir / "random-bad-truncated.safetensors").write_bytes(head)
    (model_dir / "random-bad-garbled.safetensors").write_bytes(head[:9] + b"\xff\xfe garbage" + head[19:])
    torch.save({"ema": {"scaleu_b_0": torch.zeros(8)}, "iters": 1}, model_dir / "random-bad-cut.pth")
    data = (model_dir / "random-bad-cut.pth").read_bytes()
    (model_dir / "random-bad-cut.pth").write_bytes(data[: len(data) // 2])
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3)},
              model_dir / "random-bad-plain-sd15.safetensors")
    cases = {
        "random-bad-keys.safetensors": [
            "is not a complete InstanceDiffusion checkpoint", "missing (1): scaleu_b_3",
            "unexpected (1): scaleu_b_3_extra", f"wrong shape (1): {bias} ({n // 2}, 2) (expected ({n},))"],
        "random-bad-truncated.safetensors": ["invalid or corrupted safetensors file"],
        "random-bad-garbled.safetensors": ["invalid or corrupted safetensors file"],
        "random-bad-cut.pth": ["cannot read", "as a torch checkpoint (truncated or corrupted?)"],
        "random-bad-plain-sd15.safetensors": ["missing (513)", "is this a plain SD1.5 model?"],
    }
    for name, fragments in cases.items():
        msg = refuse(host, loader_prompt(name), fragments[0])
        assert msg.startswith("LoadInstanceDiffusion:"), msg
        for fragment in fragments[1:]:
            assert fragment in msg, msg
    assert len(refuse(host, loader_prompt("random-bad-keys.safetensors"), "missing")) < 2500


class _Evil:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("attack", ["os.system", "subprocess", "eval"])
def test_loader_node_refuses_malicious_pickles(host, model_dir, tmp_path, attack):
    canary = tmp_path / "canary"
    payload = {
        "os.system": (os.system, (f"touch {canary}",)),
        "subprocess": (subprocess.call, (["touch", str(canary)],)),
        "eval": (eval, (f"__import__('os').system('touch {canary}')",)),
    }[attack]
    name = f"random-bad-evil-{attack.replace('.', '-')}.pth"
    torch.save({"ema": {"scaleu_b_0": torch.zeros(8)}, "opt": {"state": {0: _Evil(*payload)}}}, model_dir / name)
    msg = refuse(host, loader_prompt(name), "refusing to load")
    assert msg.startswith("LoadInstanceDiffusion:") and "it references" in msg
    time.sleep(0.5)
    assert not canary.exists()


# ------------------------------------------------------------------------------------------ in-process refusals

def test_in_process_refusals_leave_the_input_model_unchanged(pack):
    """Non-SD1.5 / mismatched widths and a latent of another aspect: InstDiffError, input MODEL untouched."""
    mod = lambda name: importlib.import_module(f"{pack.__name__}.{name}")  # noqa: E731
    errors = mod("instdiff_model.errors")
    model = importlib.import_module("scripts.random_models").random_sd15_model(4, 32)
    before = repr(model.model_options)
    apply = mod("nodes.apply").ApplyInstanceDiffusion()
    with pytest.raises(errors.InstDiffError, match="weights are for a UNet with 320 base channels, this MODEL has 32"):
        apply.apply(model, types.SimpleNamespace(model_channels=320), None, 1.0, 0.0, True, False)
    assert repr(model.model_options) == before
    sd20 = importlib.import_module("comfy.supported_models").SD20(
        {"model_channels": 320, "use_linear_in_transformer": True, "context_dim": 1024, "adm_in_channels": None,
         "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0]})
    fake = types.SimpleNamespace(model=types.SimpleNamespace(model_config=sd20), model_options={})
    with pytest.raises(errors.InstDiffError, match="SD1.5 models only, but this MODEL is SD20; load an SD1.5 checkpoint"):
        apply.apply(fake, types.SimpleNamespace(model_channels=320), None, 1.0, 0.0, True, False)
    assert fake.model_options == {}


# ------------------------------------------------------------------------------------------ no state left behind

def layout_variant(i):
    """Distinct light layouts (boxes, points, scribbles: no ConvNeXt mask pass), shifted and re-captioned per index."""
    fmt = ["boxes", "points", "scribbles"][i % 3]
    shift = 4 * (i // 3)
    insts = json.loads(json.dumps(FORMATS[fmt]))
    for inst in insts:
        for key in ("box", "point"):
            if key in inst:
                inst[key][0] = max(0, inst[key][0] - shift)
        inst["caption"] += f" {i}"
    return insts


def variant_prompt(i, **kw):
    return lean(*grounded_prompt(layout_variant(i), preview=False, steps=1, seed=3, **kw))


def test_ten_runs_with_different_layouts_match_fresh_runs_and_memory_stays_flat(host):
    """Also the determinism check: a repeat (same seed and inputs, re-executed) is bit-identical, including
    a mask layout (random point sampling from the mask) with masked attention."""
    masked_layout = lambda: lean(*grounded_prompt(FORMATS["boxes"][:1], mask_instance=True, masked=True,  # noqa: E731
                                                  preview=False, steps=1, seed=3))
    prompts = {i: (lambda i=i: variant_prompt(i, masked=(i % 2 == 1))) for i in range(6)}
    prompts["mask"] = masked_layout
    order = [0, 1, "mask", 2, 0, 3, 4, "mask", 5, 0]
    first, rss = {}, []
    for k, i in enumerate(order):
        latent = run_latent(host, *prompts[i]())
        rss.append(rss_kb(host))
        assert torch.isfinite(latent).all()
        if i in first:
            assert torch.equal(latent, first[i]), f"run {k} (layout {i}) differs from its first run"
        else:
            assert not any(torch.equal(latent, v) for v in first.values()), f"layout {i} gave another layout's result"
            first[i] = latent
    growth_mb = (rss[-1] - rss[0]) / 1024
    assert growth_mb < 300, f"server RSS grew by {growth_mb:.0f} MB over {len(order)} runs: {rss}"


def _interrupt_mid_sampling(host, prompt):
    """Run `prompt` in a thread, POST /interrupt once the host log shows a sampling progress bar."""
    result = {}

    def target():
        try:
            result["entry"] = host.run(prompt)
        except Exception as exc:  # noqa: BLE001 - checked below
            result["error"] = exc

    start = len(host.log())
    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.time() + 180
    while time.time() < deadline and thread.is_alive() and "it/s]" not in host.log()[start:] \
            and "s/it]" not in host.log()[start:]:
        time.sleep(0.2)
    host.post("/interrupt", {})
    thread.join(300)
    assert not thread.is_alive()
    assert "error" in result, "the long run finished before the interrupt; make it longer"
    assert "interrupt" in str(result["error"]).lower(), result["error"]


def test_interrupted_runs_leave_the_next_run_correct(host):
    """Interrupt a grounded KSampler, then the MIS KSampler (mis = 1: every step is MIS), each mid-sampling."""
    ref_prompt, ids = variant_prompt(7, masked=True)
    reference = run_latent(host, ref_prompt, ids)
    instances = [{"caption": f"object number {i}", "box": [8 * i, 4 * i, 40, 48]} for i in range(3)]
    for mis in (None, 1.0):
        long_prompt, _ = lean(*grounded_prompt(instances, preview=False, steps=500, mis=mis, masked=True, seed=8))
        _interrupt_mid_sampling(host, long_prompt)
        assert torch.equal(run_latent(host, ref_prompt, ids), reference)
