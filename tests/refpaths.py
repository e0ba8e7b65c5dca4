"""Where the reference vectors live: env INSTDIFF_REFERENCE_VECTORS / INSTDIFF_REFERENCE_UNET or ../shared/reference/."""
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def vectors_dir() -> Path:
    return Path(os.environ.get("INSTDIFF_REFERENCE_VECTORS", REPO.parent / "shared" / "reference" / "vectors"))


def unet_dir() -> Path:
    return Path(os.environ.get("INSTDIFF_REFERENCE_UNET", REPO.parent / "shared" / "reference" / "unet"))
