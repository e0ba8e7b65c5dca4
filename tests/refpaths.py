"""Where the reference vectors live: env INSTDIFF_REFERENCE_VECTORS / INSTDIFF_REFERENCE_UNET, else ../shared/reference/."""
import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = (REPO.parent / "shared" / "reference",)  # the read-only reference folder beside the checkout


def _find(env: str, sub: str) -> Path:
    if os.environ.get(env):
        return Path(os.environ[env])
    for base in CANDIDATES:
        if (base / sub).is_dir():
            return base / sub
    pytest.skip(f"reference folder {sub!r} not found: set {env} or keep ../shared/reference beside the checkout",
                allow_module_level=True)


def vectors_dir() -> Path:
    return _find("INSTDIFF_REFERENCE_VECTORS", "vectors")


def unet_dir() -> Path:
    return _find("INSTDIFF_REFERENCE_UNET", "unet")


def official_keys() -> dict:
    """{official key: shape} of the 513 added parameters, from instancediffusion_keys.tsv."""
    spec = {}
    for line in (vectors_dir().parent / "instancediffusion_keys.tsv").read_text().splitlines():
        if line and not line.startswith("#") and not line.startswith("key\t"):
            key, shape, _ = line.split("\t")
            spec[key] = tuple(json.loads(shape))
    return spec
