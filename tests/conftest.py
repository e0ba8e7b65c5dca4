"""Shared pytest fixtures: the repo on sys.path and one host server per session."""
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def host():
    """A running host with this pack and the test-only nodes (tests/host_nodes/), the random stand-in files in its models folders."""
    import subprocess
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_random_models.py")], check=True,
                   stdout=subprocess.DEVNULL)
    from scripts.headless import HostServer
    with HostServer(test_nodes=True) as server:
        yield server


@pytest.fixture(scope="session")
def pack():
    """This pack imported in-process on the host's modules (CPU, pytorch attention, grad off)."""
    from scripts.hostenv import import_pack
    return import_pack()


@pytest.fixture(scope="session")
def tiny(pack):
    """The in-process pack's modules by name, and builders of the tiny SD1.5 UNet (32 channels) and of the formula
    InstanceDiffusion weights at its width (a new object per call: tests never share mutable models)."""
    import importlib
    import types
    random_models = importlib.import_module("scripts.random_models")

    def mod(name):
        return importlib.import_module(f"{pack.__name__}.{name}")

    return types.SimpleNamespace(
        mod=mod, unet=lambda seed: random_models.random_sd15_model(seed, 32),
        instdiff=lambda salt: mod("instdiff_model.model").InstanceDiffusionModel.from_formula(salt, 32))
