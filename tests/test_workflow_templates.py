"""The shipped workflows as templates: downloadable models on their loaders, a thumbnail each, every node shown."""
import importlib
import json
import re
from pathlib import PurePosixPath
from urllib.parse import urlparse

import pytest
from PIL import Image, ImageStat

from scripts import build_workflows
from test_workflows import WORKFLOWS, load

# The frontend's missing-models download (missingModelDownload.ts): these sources and suffixes only.
SOURCES = ("https://huggingface.co/", "https://civitai.com/")
SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pth", ".pt")
MODEL_FILE = {"name", "url", "directory", "hash", "hash_type"}  # workflowSchema.ts zModelFile


def loaders(wf):
    return [n for n in wf["nodes"] if n["type"] in build_workflows.LOADERS]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_loader_names_a_downloadable_file(path):
    wf = load(path)
    assert loaders(wf), "no loader"
    for node in loaders(wf):
        name = node["widgets_values"][0]
        models = node["properties"].get("models")
        assert models, f"{node['type']} {name}: no properties.models (the missing-models dialog offers no download)"
        (entry,) = [m for m in models if m["name"] == name]
        assert set(entry) <= MODEL_FILE and {"name", "url", "directory"} <= set(entry)
        assert entry["url"].startswith(SOURCES) and name.endswith(SUFFIXES)
        assert PurePosixPath(urlparse(entry["url"]).path).name == name, "the download is saved under another name"
        assert "/resolve/" in entry["url"], "a huggingface download URL (resolve), not a page"
        want = {"CheckpointLoaderSimple": "checkpoints", "LoadInstanceDiffusion": "instancediffusion"}[node["type"]]
        assert entry["directory"] == want


def test_the_weights_are_the_official_files():
    assert build_workflows.MODELS[build_workflows.INSTDIFF][0] == (
        "https://huggingface.co/xudongw/InstanceDiffusion/resolve/main/instancediffusion_sd15.pth")  # official README
    names = {n["widgets_values"][0] for p in WORKFLOWS for n in loaders(load(p)) if n["type"] == "LoadInstanceDiffusion"}
    assert names == {"instancediffusion_sd15.pth"}


def test_a_downloaded_file_is_listed_by_the_loader_under_the_workflows_name(pack, tmp_path, monkeypatch):
    """The download goes to models/<directory>/<name>: the loader's list then holds exactly the widget value."""
    import folder_paths
    loader = importlib.import_module(f"{pack.__name__}.nodes.loader")
    exts = set(folder_paths.supported_pt_extensions)
    for directory in ("instancediffusion", "checkpoints", loader.MANAGER_FOLDER):
        (tmp_path / directory).mkdir()
        monkeypatch.setitem(folder_paths.folder_names_and_paths, directory, ([str(tmp_path / directory)], exts))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {}, raising=False)
    for name, (_, directory) in build_workflows.MODELS.items():
        (tmp_path / directory / name).write_bytes(b"stand-in")
    assert loader.FOLDER == "instancediffusion"
    assert build_workflows.INSTDIFF in loader.model_choices()
    assert {build_workflows.CKPT, build_workflows.REFINER} <= set(folder_paths.get_filename_list("checkpoints"))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_workflow_has_a_thumbnail_of_its_layout(path):
    thumb = path.with_suffix(".jpg")
    assert thumb.exists(), f"no {thumb.name}: run scripts/build_workflows.py"
    with Image.open(thumb) as im:
        assert im.format == "JPEG" and im.size[0] >= 256 and im.size[0] == im.size[1]
        assert max(ImageStat.Stat(im.convert("RGB")).stddev) > 10, "a blank card"


# The 2026 templates browser titles a pack's workflow by its file name as it is (getTemplateTitle: title ?? name,
# title = the name; no index.json is read for custom nodes), and puts the name unencoded into the URLs of the JSON and
# the thumbnail (/api/workflow_templates/<pack>/<name>.json|.jpg): the name is the title, in URL-safe characters.
READABLE = re.compile(r"[A-Z0-9][A-Za-z0-9 ,()-]*[A-Za-z0-9)] - InstanceDiffusion")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_workflow_file_is_named_by_a_readable_title(path):
    assert READABLE.fullmatch(path.stem), f"{path.name}: the templates browser shows this name as its title"
    assert "_" not in path.stem and "  " not in path.stem and len(path.stem) <= 56
    (workflow_id,) = [i for i in build_workflows.TITLES if build_workflows.file_stem(i) == path.stem]
    assert path.stem == f"{build_workflows.TITLES[workflow_id]} - InstanceDiffusion"


def test_every_product_node_is_in_a_shipped_workflow(pack):
    used = {n["type"] for p in WORKFLOWS for n in load(p)["nodes"]}
    assert not set(pack.NODE_CLASS_MAPPINGS) - used, sorted(set(pack.NODE_CLASS_MAPPINGS) - used)


def test_the_generator_covers_every_shipped_workflow():
    made = set(build_workflows.WORKFLOWS) | set(build_workflows.EDIT_NOTES) | {build_workflows.CORE_CANVAS}
    assert made == set(build_workflows.TITLES)
    assert {p.stem for p in WORKFLOWS} == {build_workflows.file_stem(i) for i in made}
    for p in WORKFLOWS:
        json.loads(p.read_text())
