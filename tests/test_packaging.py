"""Packaging checked, not claimed: comfy-cli validates the pack, and its archive ships the product that registers every node."""
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scripts.hostenv import REPO

# what the published archive holds at its top level; anything else (tests, bench, scripts, dev files) stays out
SHIPPED = {"__init__.py", "nodes", "instdiff_model", "web", "workflows", "docs", "README.md", "LICENSE",
           "pyproject.toml", "requirements.txt"}


def comfy(args, cwd, home):
    """Run comfy-cli non-interactively, telemetry off, its config in a throwaway home; returns the output."""
    cli = Path(sys.executable).parent / "comfy"
    if not cli.exists():
        pytest.fail("comfy-cli is not installed in this venv: run `make setup` (requirements-dev.txt)")
    env = dict(os.environ, DO_NOT_TRACK="1", COMFY_NO_TELEMETRY="1", HOME=str(home), NO_COLOR="1", COLUMNS="200")
    done = subprocess.run([str(cli), "--skip-prompt", "--no-json", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    return out


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A copy of the checkout as a fresh clone would hold it (tracked and new, not ignored, files), in its own git."""
    root = tmp_path_factory.mktemp("clone") / "comfyui-instancediffusion"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, files):
        if (REPO / rel).is_file():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, root / rel)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    return root


def test_comfy_node_validate_passes_without_a_warning(clone, tmp_path):
    out = comfy(["node", "validate"], clone, tmp_path)
    assert "All validation checks passed" in out, out
    assert "warning" not in out.lower(), out


@pytest.fixture(scope="module")
def archive(clone, tmp_path_factory):
    """`comfy node pack` of the clone, unpacked: (names in the zip, the unpacked pack folder)."""
    comfy(["node", "pack"], clone, tmp_path_factory.mktemp("home"))
    with zipfile.ZipFile(clone / "node.zip") as z:
        names = z.namelist()
        unpacked = tmp_path_factory.mktemp("unpacked") / "comfyui-instancediffusion"
        z.extractall(unpacked)
    return names, unpacked


def test_archive_ships_the_product_not_the_workshop(archive):
    names, _ = archive
    top = {n.split("/")[0] for n in names}
    assert top == SHIPPED, f"unexpected: {sorted(top - SHIPPED)}, missing: {sorted(SHIPPED - top)} (see .comfyignore)"
    assert {"nodes/__init__.py", "instdiff_model/__init__.py", "LICENSE"} <= set(names)
    assert not [n for n in names if "random_models" in n or "test_fixtures" in n or "__pycache__" in n]


@pytest.fixture(scope="module")
def loaded(archive):
    """The unpacked archive loaded as a custom node in a fresh process on the host, alone (no tests/, scripts/ or
    tools/ beside it): its registered nodes, web folder and the files of every module the load imported."""
    _, unpacked = archive
    probe = (
        "import importlib.util, json, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from scripts.hostenv import import_host\n"
        "import_host()\n"
        f"sys.path.remove({str(REPO)!r})  # the archive alone: the checkout's scripts/ is not importable\n"
        "for name in [n for n in sys.modules if n == 'scripts' or n.startswith('scripts.')]:\n"
        "    del sys.modules[name]\n"
        f"root = {str(unpacked)!r}\n"
        "spec = importlib.util.spec_from_file_location('comfyui-instancediffusion', root + '/__init__.py',\n"
        "                                              submodule_search_locations=[root])\n"
        "pack = importlib.util.module_from_spec(spec)\n"
        "sys.modules[spec.name] = pack\n"
        "spec.loader.exec_module(pack)\n"
        "files = [m.__file__ for n, m in list(sys.modules.items()) if n.startswith(spec.name + '.')]\n"
        "print(json.dumps({'nodes': sorted(pack.NODE_CLASS_MAPPINGS), 'web': pack.WEB_DIRECTORY, 'files': files}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_unpacked_archive_imports_on_the_host_and_registers_every_node(archive, loaded, pack):
    """The archive alone (no tests/ or scripts/ beside it) loads as a custom node and registers the product nodes."""
    _, unpacked = archive
    got = loaded
    assert got["files"] and all(Path(f).resolve().is_relative_to(unpacked.resolve()) for f in got["files"])
    product = sorted(pack.NODE_CLASS_MAPPINGS)
    assert got["nodes"] == product and len(product) >= 10
    assert not [n for n in product if n.startswith("InstDiffTest")], "test-only nodes registered by the product"
    assert any((unpacked / got["web"]).rglob("*.js")), "the editor's web folder is not in the archive"


def test_every_shipped_module_is_on_a_node_path(archive, loaded):
    """No module ships that only tests, bench or reference checks use: each .py file of the archive is imported when
    the host loads the pack (from __init__.py through nodes/), or is a command the README gives users (python -m)."""
    names, unpacked = archive
    shipped = {n for n in names if n.endswith(".py")}
    imported = {"__init__.py"} | {Path(f).resolve().relative_to(unpacked.resolve()).as_posix() for f in loaded["files"]}
    commands = {m.replace(".", "/") + ".py" for m in re.findall(r"python -m ([\w.]+)", (REPO / "README.md").read_text())}
    assert {"nodes/loader.py", "instdiff_model/position_net.py"} <= imported <= shipped
    assert not shipped - imported - commands, f"shipped but on no node path: {sorted(shipped - imported - commands)}"
