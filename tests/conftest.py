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
