"""The pack loads on the host, registers its nodes, and a plain SD1.5 prompt runs headless."""
import re

from PIL import Image

from scripts.hostenv import REPO


def pack_node_names():
    import ast
    names = set()
    for path in [*(REPO / "nodes").glob("*.py"), *(REPO / "tests" / "host_nodes").rglob("*.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "NODE_CLASS_MAPPINGS" for t in node.targets):
                if isinstance(node.value, ast.Dict):
                    names |= {k.value for k in node.value.keys}
    return names


def test_pack_imports_without_error(host):
    log = host.log()
    assert "comfyui-instancediffusion" in log
    assert not re.search(r"\(IMPORT FAILED\).*instancediffusion|Cannot import .*instancediffusion", log), log[-3000:]


def test_every_node_class_is_registered(host):
    names = pack_node_names()
    assert "InstDiffTestRandomTinySD15" in names
    missing = names - set(host.object_info)
    assert not missing, f"not registered on the host: {sorted(missing)}"


def plain_prompt(width=256, height=256, steps=2):
    return {
        "1": {"class_type": "InstDiffTestRandomTinySD15", "inputs": {"seed": 1, "model_channels": 32}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a photo of a cat", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 7, "steps": steps, "cfg": 7.0,
                                                   "sampler_name": "euler", "scheduler": "normal",
                                                   "positive": ["2", 0], "negative": ["3", 0],
                                                   "latent_image": ["4", 0], "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "plain"}},
    }


def test_plain_txt2img_writes_png(host):
    entry = host.run(plain_prompt())
    files = host.output_files(entry, "7")
    assert len(files) == 1 and files[0].exists()
    with Image.open(files[0]) as im:
        assert im.size == (256, 256)
        assert im.getextrema() != ((0, 0), (0, 0), (0, 0))


def test_random_checkpoint_is_detected_as_sd15_by_the_host_loader(host, pack):
    import comfy.sd
    from scripts.hostenv import host_dir
    path = host_dir() / "models" / "checkpoints" / "random-sd15.safetensors"
    model, clip, vae = comfy.sd.load_checkpoint_guess_config(str(path), output_vae=True, output_clip=True)[:3]
    assert type(model.model.model_config).__name__ == "SD15"
    assert clip.tokenize("x").keys() == {"l"}
    import torch
    assert vae.decode(torch.zeros(1, 4, 8, 8)).shape == (1, 64, 64, 3)
