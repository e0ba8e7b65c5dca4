"""Load InstanceDiffusion node: official .pth, converted .safetensors or logtd's split files (models/instancediffusion/, Manager's models/instance_models/)."""
import logging
import os

import torch

from ..instdiff_model.convert import cached_copy
from ..instdiff_model.errors import InstDiffError
from ..instdiff_model.model import InstanceDiffusionModel
from . import host_api

FOLDER = "instancediffusion"
MANAGER_FOLDER = "instance_models"  # ComfyUI-Manager's model list installs logtd's split files here
# logtd's split files and the sub-folder of instance_models/ Manager puts each in
SPLIT = {"fusers.ckpt": "fuser_models", "position_net.ckpt": "positionnet_models", "scaleu.ckpt": "scaleu_models"}


host_api.register_model_folder(FOLDER)
host_api.register_model_folder(MANAGER_FOLDER)
_CACHE = {}
CACHE_FOLDER = "instancediffusion"  # user/__instancediffusion/: safetensors copies of .pth / .ckpt weights


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def storage_dtype(precision: str, device) -> torch.dtype:
    """The dtype the fusers and ScaleU are stored in: `auto` = fp16 on CUDA/MPS (half the memory, the UNet's usual
    compute dtype), fp32 on the CPU; they are cast per call to the UNet's compute dtype either way."""
    if precision == "auto":
        return torch.float16 if torch.device(device).type in ("cuda", "mps") else torch.float32
    if precision not in DTYPES:
        raise InstDiffError(f"unknown precision {precision!r}; use one of auto, {', '.join(DTYPES)}")
    return DTYPES[precision]


def load_cached(paths, weights: str, precision: str = "auto", tokenizer_precision: str = "fp32"):
    """One loaded copy per (files, sizes, mtimes, weights, precisions): a second run or loader node reuses it.
    `paths`: one file, or logtd's three split files."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    stats = [os.stat(p) for p in paths]
    dtypes = (storage_dtype(precision, host_api.torch_device()),
              storage_dtype(tokenizer_precision, "cpu"))
    key = (tuple((os.path.realpath(p), st.st_size, st.st_mtime_ns) for p, st in zip(paths, stats)), weights, dtypes)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = read_model(paths, weights).set_precision(*dtypes)
    return _CACHE[key]


def read_model(paths: list, weights: str) -> InstanceDiffusionModel:
    """From a safetensors file directly; from torch files (.pth, .ckpt) through their safetensors copy in the cache
    folder, written on the first load with a progress bar (the torch zip reads ~4x slower); directly if it cannot be."""
    source = paths[0] if len(paths) == 1 else paths
    if all(p.endswith((".safetensors", ".sft")) for p in paths):
        return InstanceDiffusionModel.from_file(source, weights=weights, dtype=torch.float32)
    bar = host_api.progress_bar(100)
    copy, why = cached_copy(paths, weights, host_api.cache_dir(CACHE_FOLDER),
                            progress=lambda done, total: bar.update_absolute(int(100 * done / total), 100))
    if copy is not None:
        try:
            return InstanceDiffusionModel.from_file(copy, dtype=torch.float32)
        except InstDiffError as e:  # a damaged copy: drop it, read the source
            why = f"{copy} is unreadable ({e}); removed it"
            os.remove(copy)
    logging.warning("InstanceDiffusion: reading %s directly, without a cached copy: %s", source, why)
    return InstanceDiffusionModel.from_file(source, weights=weights, dtype=torch.float32)


def _trio(files: dict, manager: bool) -> tuple:
    """(the split files' paths, the missing ones as named in their folder) from {split file name: path or None}."""
    return ([files[n] for n in SPLIT if files[n]],
            [f"{SPLIT[n]}/{n}" if manager else n for n in SPLIT if not files[n]])


def model_entries() -> dict:
    """{entry name: (paths, missing files)}: single files and split-file folders of models/instancediffusion/, and
    each instance_models/ folder (Manager's layout; extra_model_paths.yaml may register more) holding any of the
    split files. The first such instance_models folder is "instance_models/", others are named by their full path."""
    entries = {}
    names = host_api.model_files(FOLDER)
    for n in names:
        if os.path.basename(n) not in SPLIT:
            entries[n] = ([host_api.model_path(FOLDER, n)], [])
    for d in sorted({os.path.dirname(n) for n in names if os.path.basename(n) in SPLIT and os.path.dirname(n)}):
        files = {f: host_api.model_path(FOLDER, f"{d}/{f}") if f"{d}/{f}" in names else None for f in SPLIT}
        entries[d + "/"] = _trio(files, manager=False)
    for root in host_api.model_roots(MANAGER_FOLDER):
        files = {f: next((p for p in (os.path.join(root, sub, f), os.path.join(root, f)) if os.path.isfile(p)), None)
                 for f, sub in SPLIT.items()}
        if any(files.values()):
            name = f"{MANAGER_FOLDER}/" if f"{MANAGER_FOLDER}/" not in entries else root.rstrip("/\\") + "/"
            entries[name] = _trio(files, manager=True)
    return entries


MISSING_MARK = " (missing "


def model_choices() -> list:
    """Entry names for the widget; an incomplete split-file folder is listed as 'name (missing file, ...)'."""
    return [name + (f"{MISSING_MARK}{', '.join(missing)})" if missing else "")
            for name, (_, missing) in model_entries().items()]


PRECISION_TIP = ("How the fusers and ScaleU are stored: auto = fp16 on CUDA/MPS, fp32 on the CPU. They always run in "
                 "the UNet's compute dtype (cast per call), so this only trades memory for a cast.")
MODEL_TIP = ("The official instancediffusion_sd15.pth, a converted .safetensors, or a folder of the split files "
             "fusers.ckpt / position_net.ckpt / scaleu.ckpt (ComfyUI-Manager's instance_models). Refresh after "
             "adding files.")
TOKENIZER_TIP = "How the instance tokenizer (position net) is stored and run: fp32 (default, exact) or fp16/bf16."


class LoadInstanceDiffusion:
    DESCRIPTION = ("Load the InstanceDiffusion weights (instance tokenizer, 16 fusers, ScaleU) from "
                   "models/instancediffusion/ or ComfyUI-Manager's models/instance_models/.")
    SEARCH_ALIASES = ["instancediffusion", "instance diffusion", "load instancediffusion", "gligen", "layout",
                      "bbox", "regional", "fuser", "position net"]
    OUTPUT_TOOLTIPS = ("The loaded weights: connect to the Instance Tokenizer and to Apply InstanceDiffusion.",)
    CATEGORY = "InstanceDiffusion"
    RETURN_TYPES = ("INSTANCEDIFFUSION",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_name": (model_choices(), {"tooltip": MODEL_TIP}),
                             "weights": (["ema", "model"], {"tooltip": (
                                 "Which copy in the official .pth: ema (what the official inference loads, best) "
                                 "or the raw training weights. Files with one copy ignore this.")})},
                "optional": {"precision": (["auto"] + list(DTYPES), {"default": "auto", "tooltip": PRECISION_TIP}),
                             "tokenizer_precision": (list(DTYPES), {"default": "fp32", "tooltip": TOKENIZER_TIP})}}

    def load(self, model_name, weights, precision="auto", tokenizer_precision="fp32"):
        name = model_name.split(MISSING_MARK)[0]
        entries = model_entries()
        if name not in entries and name.rstrip("/") in entries:  # a single file given with a trailing slash
            name = name.rstrip("/")
        if name not in entries:
            raise InstDiffError(f"{model_name!r} is not in models/{FOLDER}/ or models/{MANAGER_FOLDER}/; put "
                                "instancediffusion_sd15.pth in models/{FOLDER}/ (or install InstanceDiffusion with "
                                "ComfyUI-Manager's model list) and refresh the page".replace("{FOLDER}", FOLDER))
        paths, missing = entries[name]
        if missing:
            raise InstDiffError(f"{name} is incomplete: {', '.join(missing)} missing; "
                                "install the missing file (ComfyUI-Manager's model list, or Hugging Face "
                                "logtd/instance_diffusion) or use instancediffusion_sd15.pth, then refresh the page")
        return (load_cached(paths, weights, precision, tokenizer_precision),)


NODE_CLASS_MAPPINGS = {"LoadInstanceDiffusion": LoadInstanceDiffusion}
NODE_DISPLAY_NAME_MAPPINGS = {"LoadInstanceDiffusion": "Load InstanceDiffusion"}
