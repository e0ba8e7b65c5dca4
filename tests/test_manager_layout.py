"""Weights where ComfyUI-Manager installs them (models/instance_models/<sub>/<file>) are listed, checked and run."""
import importlib
import pytest
import torch
from safetensors.torch import load_file

from scripts.headless import ui_to_api
from scripts.make_random_models import INSTDIFF, MANAGER_SPLIT
from test_workflows import load, shipped, shrink
from workflows_api import instancediffusion_off, save_latent_after


@pytest.fixture
def folders(pack, tmp_path, monkeypatch):
    """The loader module with models/instancediffusion/ and models/instance_models/ pointed at empty temp folders."""
    import folder_paths
    loader = importlib.import_module(f"{pack.__name__}.nodes.loader")
    exts = set(folder_paths.supported_pt_extensions)
    own, manager = tmp_path / "instancediffusion", tmp_path / "models" / "instance_models"
    own.mkdir()
    manager.mkdir(parents=True)
    monkeypatch.setitem(folder_paths.folder_names_and_paths, loader.FOLDER, ([str(own)], exts))
    monkeypatch.setitem(folder_paths.folder_names_and_paths, loader.MANAGER_FOLDER, ([str(manager)], exts))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {}, raising=False)
    return loader, own, manager


def touch(root, rel):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"stand-in")
    return path


def test_managers_three_files_are_one_entry(folders):
    loader, own, manager = folders
    touch(own, "instancediffusion_sd15.pth")
    paths = [touch(manager, f"{sub}/{name}") for name, sub in loader.SPLIT.items()]
    assert loader.model_choices() == ["instancediffusion_sd15.pth", "instance_models/"]
    assert loader.model_entries()["instance_models/"] == ([str(p) for p in paths], [])


def test_a_half_installed_trio_is_listed_with_the_missing_file_and_refused_by_name(folders):
    loader, _, manager = folders
    touch(manager, "fuser_models/fusers.ckpt")
    touch(manager, "positionnet_models/position_net.ckpt")
    (choice,) = loader.model_choices()
    assert choice == "instance_models/ (missing scaleu_models/scaleu.ckpt)"
    errors = importlib.import_module(loader.__name__.rsplit(".", 2)[0] + ".instdiff_model.errors")
    for name in (choice, "instance_models/"):  # as listed, and as a workflow saved before the file went missing
        with pytest.raises(errors.InstDiffError, match=r"scaleu_models/scaleu\.ckpt missing"):
            loader.LoadInstanceDiffusion().load(name, "ema")


def test_a_folder_registered_by_extra_model_paths_is_listed_too(folders, tmp_path):
    """extra_model_paths.yaml `instance_models: <path>` adds a path to the folder registry (both hosts)."""
    import folder_paths
    loader, _, manager = folders
    for name, sub in loader.SPLIT.items():
        touch(manager, f"{sub}/{name}")
    extra = tmp_path / "shared_drive" / "instance_models"
    for name, sub in loader.SPLIT.items():
        touch(extra, f"{sub}/{name}")
    folder_paths.add_model_folder_path(loader.MANAGER_FOLDER, str(extra))
    assert loader.model_choices() == ["instance_models/", str(extra) + "/"]
    assert loader.model_entries()[str(extra) + "/"][0][0].startswith(str(extra))


def test_split_files_in_one_folder_of_models_instancediffusion_still_work(folders):
    loader, own, _ = folders
    for name in loader.SPLIT:
        touch(own, f"logtd/{name}")
    touch(own, "other/fusers.ckpt")
    assert loader.model_choices() == ["logtd/", "other/ (missing position_net.ckpt, scaleu.ckpt)"]


def test_managers_split_stand_ins_hold_the_single_file_stand_ins_weights(pack, stand_ins):
    """make_random_models.py writes the single-file stand-in's weights as logtd's three files in Manager's layout."""
    from scripts.hostenv import host_dir
    checkpoint = importlib.import_module(f"{pack.__name__}.instdiff_model.checkpoint")
    models = host_dir() / "models"
    split = checkpoint.read_weights([models / rel for rel in MANAGER_SPLIT.values()])
    single = checkpoint.read_weights(models / "instancediffusion" / INSTDIFF)
    assert split.keys() == single.keys() and all(torch.equal(split[k], single[k]) for k in single)


def test_torch_weights_load_through_a_cached_copy_with_a_progress_bar(folders, stand_ins, tmp_path, monkeypatch):
    """Manager's three .ckpt files (torch zips, read ~4x slower than safetensors): the first load shows the host's
    progress bar while it writes one safetensors copy into user/__instancediffusion/ (nothing among the models),
    the next load (a new process, the in-memory cache cleared) reads that copy; both give the same weights."""
    import comfy.utils
    import folder_paths
    from scripts.hostenv import host_dir
    loader, _, manager = folders
    for name, rel in MANAGER_SPLIT.items():
        (manager / loader.SPLIT[name]).mkdir()
        (manager / loader.SPLIT[name] / name).hardlink_to(host_dir() / "models" / rel)
    monkeypatch.setattr(folder_paths, "user_directory", str(tmp_path / "user"), raising=False)
    monkeypatch.setattr(folder_paths, "get_system_user_directory",
                        lambda name: str(tmp_path / "user" / f"__{name}"), raising=False)
    ticks = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", lambda value, total, preview: ticks.append(value))
    monkeypatch.setattr(loader, "_CACHE", {})
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    (first,) = loader.LoadInstanceDiffusion().load("instance_models/", "ema", precision="fp16")
    (copy,) = (tmp_path / "user" / "__instancediffusion").iterdir()
    assert copy.name.startswith("fusers.ema.") and copy.suffix == ".safetensors"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == sorted(before + [
        copy.parent.parent.relative_to(tmp_path), copy.parent.relative_to(tmp_path), copy.relative_to(tmp_path)])
    assert ticks == sorted(ticks) and ticks[-1] == 100 and len(ticks) > 10
    written, ticks[:] = copy.stat().st_mtime_ns, []
    loader._CACHE.clear()
    (again,) = loader.LoadInstanceDiffusion().load("instance_models/", "ema", precision="fp16")
    assert copy.stat().st_mtime_ns == written and ticks == []
    a, b = first.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    loader._CACHE.clear()


def test_a_workflow_runs_headless_on_managers_split_files(host):
    """The shipped boxes workflow on the entry "instance_models/" (Manager's three files): it runs, and
    InstanceDiffusion acts (the latent differs from the same run with Apply made inert)."""
    choices = host.object_info["LoadInstanceDiffusion"]["input"]["required"]["model_name"][0]
    assert "instance_models/" in choices and INSTDIFF in choices
    wf = load(shipped("instancediffusion_boxes"))
    prompt = shrink(ui_to_api(wf, host.object_info))
    for node in prompt.values():
        if node["class_type"] == "LoadInstanceDiffusion":
            node["inputs"]["model_name"] = "instance_models/"
    saver = save_latent_after(prompt)
    (ours,), (off,) = ([load_file(p)["latent_tensor"] for p in host.output_files(host.run(run), saver, kind="latents")]
                       for run in (prompt, instancediffusion_off(prompt)))
    assert (ours - off).abs().max() > 1e-3 * ours.abs().max(), "InstanceDiffusion made no difference"
