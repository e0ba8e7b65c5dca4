"""Load InstanceDiffusion node: official .pth, converted .safetensors or the logtd split files from models/instancediffusion/."""
import os

import comfy.model_management
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


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def storage_dtype(precision: str, device) -> torch.dtype:
    """The dtype the fusers and ScaleU are stored in: `auto` = fp16 on CUDA/MPS (half the memory, the UNet's usual
    compute dtype), fp32 on the CPU; they are cast per call to the UNet's compute dtype either way."""
    if precision == "auto":
        return torch.float16 if torch.device(device).type in ("cuda", "mps") else torch.float32
    if precision not in DTYPES:
        raise InstDiffError(f"unknown precision {precision!r}; use one of auto, {', '.join(DTYPES)}")
    return DTYPES[precision]


def load_cached(path: str, weights: str, precision: str = "auto", tokenizer_precision: str = "fp32"):
    """One loaded copy per (file, size, mtime, weights, precisions): a second run or loader node reuses it."""
    stat = os.stat(path)
    dtypes = (storage_dtype(precision, comfy.model_management.get_torch_device()),
              storage_dtype(tokenizer_precision, "cpu"))
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, weights, dtypes)
    if key not in _CACHE:
        _CACHE.clear()
        model = InstanceDiffusionModel.from_file(path, weights=weights, dtype=torch.float32)
        _CACHE[key] = model.set_precision(*dtypes)
    return _CACHE[key]


def model_choices() -> list:
    names = folder_paths.get_filename_list(FOLDER)
    # the logtd split layout is one folder with fusers.ckpt, position_net.ckpt and scaleu.ckpt: offer the folder
    split = sorted({os.path.dirname(n) for n in names if os.path.basename(n) == "fusers.ckpt" and os.path.dirname(n)})
    keep = [n for n in names if os.path.basename(n) not in ("fusers.ckpt", "position_net.ckpt", "scaleu.ckpt")]
    return keep + [d + "/" for d in split]


PRECISION_TIP = ("How the fusers and ScaleU are stored: auto = fp16 on CUDA/MPS, fp32 on the CPU. They always run in "
                 "the UNet's compute dtype (cast per call), so this only trades memory for a cast.")
TOKENIZER_TIP = "How the instance tokenizer (position net) is stored and run: fp32 (default, exact) or fp16/bf16."


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
        return {"required": {"model_name": (model_choices(),), "weights": (["ema", "model"],)},
                "optional": {"precision": (["auto"] + list(DTYPES), {"default": "auto", "tooltip": PRECISION_TIP}),
                             "tokenizer_precision": (list(DTYPES), {"default": "fp32", "tooltip": TOKENIZER_TIP})}}

    def load(self, model_name, weights, precision="auto", tokenizer_precision="fp32"):
        name = model_name.rstrip("/")
        for base in folder_paths.get_folder_paths(FOLDER):
            path = os.path.join(base, name)
            if os.path.exists(path):
                return (load_cached(path, weights, precision, tokenizer_precision),)
        raise InstDiffError(f"{model_name!r} is not in models/{FOLDER}/; put the InstanceDiffusion weights there "
                            "and refresh the page")


NODE_CLASS_MAPPINGS = {"LoadInstanceDiffusion": LoadInstanceDiffusion}
NODE_DISPLAY_NAME_MAPPINGS = {"LoadInstanceDiffusion": "Load InstanceDiffusion"}
