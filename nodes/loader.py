"""Load InstanceDiffusion node: official .pth, converted .safetensors or the logtd split files from models/instancediffusion/."""
import os

import folder_paths
import torch

from ..instdiff_model.errors import InstDiffError
from ..instdiff_model.model import InstanceDiffusionModel

FOLDER = "instancediffusion"


def register_folder() -> None:
    """models/instancediffusion/ in the host's folder registry (kept if extra_model_paths.yaml added it first)."""
    default = os.path.join(folder_paths.models_dir, FOLDER)
    exts = set(folder_paths.supported_pt_extensions)
    if FOLDER in folder_paths.folder_names_and_paths:
        paths, known = folder_paths.folder_names_and_paths[FOLDER]
        if default not in paths:
            paths.append(default)
        folder_paths.folder_names_and_paths[FOLDER] = (paths, set(known) | exts)
    else:
        folder_paths.folder_names_and_paths[FOLDER] = ([default], exts)
    os.makedirs(default, exist_ok=True)


register_folder()
_CACHE = {}


def load_cached(path: str, weights: str) -> InstanceDiffusionModel:
    """One loaded copy per (file, size, mtime, weights): a second run or a second loader node reuses it."""
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, weights)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = InstanceDiffusionModel.from_file(path, weights=weights, dtype=torch.float32)
    return _CACHE[key]


def model_choices() -> list:
    names = folder_paths.get_filename_list(FOLDER)
    # the logtd split layout is one folder with fusers.ckpt, position_net.ckpt and scaleu.ckpt: offer the folder
    split = sorted({os.path.dirname(n) for n in names if os.path.basename(n) == "fusers.ckpt" and os.path.dirname(n)})
    keep = [n for n in names if os.path.basename(n) not in ("fusers.ckpt", "position_net.ckpt", "scaleu.ckpt")]
    return keep + [d + "/" for d in split]


class LoadInstanceDiffusion:
    DESCRIPTION = ("Load the InstanceDiffusion weights (instance tokenizer, 16 fusers, ScaleU) from models/instancediffusion/: "
                   "the official instancediffusion_sd15.pth (read safely, no pickled code runs), a converted .safetensors, "
                   "or a folder with the logtd pack's fusers/position_net/scaleu.ckpt. 'ema' is what the official "
                   "inference loads.")
    CATEGORY = "InstanceDiffusion"
    RETURN_TYPES = ("INSTANCEDIFFUSION",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_name": (model_choices(),), "weights": (["ema", "model"],)}}

    def load(self, model_name, weights):
        name = model_name.rstrip("/")
        for base in folder_paths.get_folder_paths(FOLDER):
            path = os.path.join(base, name)
            if os.path.exists(path):
                return (load_cached(path, weights),)
        raise InstDiffError(f"{model_name!r} is not in models/{FOLDER}/; put the InstanceDiffusion weights there "
                            "and refresh the page")


NODE_CLASS_MAPPINGS = {"LoadInstanceDiffusion": LoadInstanceDiffusion}
NODE_DISPLAY_NAME_MAPPINGS = {"LoadInstanceDiffusion": "Load InstanceDiffusion"}
