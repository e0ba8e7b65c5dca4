"""Import the ComfyUI host and this pack in-process (CPU), for fixture building and direct node tests."""
import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACK_MODULE = "comfyui_instancediffusion"


def host_dir() -> Path:
    """The host folder: $COMFYUI_PATH, else the one scripts/setup_host.sh recorded."""
    if os.environ.get("COMFYUI_PATH"):
        return Path(os.environ["COMFYUI_PATH"]).resolve()
    recorded = REPO / ".cache" / "host_path"
    if not recorded.exists():
        raise SystemExit("no test host: run scripts/setup_host.sh first (make setup)")
    return Path(recorded.read_text().strip())


def import_host():
    """Put the host on sys.path in CPU mode, with grad off as the host's executor runs nodes."""
    host = str(host_dir())
    if host not in sys.path:
        sys.path.insert(0, host)
    import comfy.cli_args
    comfy.cli_args.args.cpu = True
    comfy.cli_args.args.use_pytorch_cross_attention = True  # as the test host server runs
    import torch
    torch.set_grad_enabled(False)
    import comfy.model_management  # noqa: F401  (reads args.cpu)
    return host


def loaded_pack():
    """This pack's package if it is already imported (by the host, under its folder name, or by import_pack), else None."""
    init = REPO / "__init__.py"
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if "." not in name and path and path.endswith("__init__.py") and Path(path).resolve() == init:
            return module
    return None


def import_pack():
    """This pack as a package, the way the host loads it from custom_nodes/ (the loaded one if there is one)."""
    if (pack := loaded_pack()) is not None:
        return pack
    import_host()
    spec = importlib.util.spec_from_file_location(PACK_MODULE, REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_MODULE] = module
    spec.loader.exec_module(module)
    return module
