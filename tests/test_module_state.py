"""No module-level caches in the pack: run state lives on the objects of a run (the only exception: host-managed weights)."""
import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALLOWED = {("nodes/host_api.py", "_MANAGED"),  # the host-managed models of each InstanceDiffusion weights (managed_for)
           ("nodes/loader.py", "_CACHE"),  # the loaded weights: one copy of the last file loaded
           ("nodes/__init__.py", "NODE_CLASS_MAPPINGS"), ("nodes/__init__.py", "NODE_DISPLAY_NAME_MAPPINGS")}  # registry
EMPTY_CALLS = {"dict", "set", "list", "WeakKeyDictionary", "WeakValueDictionary", "WeakSet", "OrderedDict",
               "defaultdict", "deque"}


def _is_empty_container(node) -> bool:
    """An empty mutable container: {}, [], set(), dict(), weakref.WeakKeyDictionary(), ... (something to fill)."""
    if isinstance(node, (ast.Dict, ast.List, ast.Set)):
        return not (node.keys if isinstance(node, ast.Dict) else node.elts)
    if isinstance(node, ast.Call) and not node.args:
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        return name in EMPTY_CALLS
    return False


def module_caches(path: Path) -> list:
    """Names bound at module level to an empty mutable container in `path`."""
    found = []
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        value = getattr(node, "value", None)
        if value is not None and _is_empty_container(value):
            found += [t.id for t in targets if isinstance(t, ast.Name)]
    return found


def test_no_module_level_cache_in_the_package():
    files = sorted(REPO.glob("instdiff_model/*.py")) + sorted(REPO.glob("nodes/*.py"))
    assert len(files) > 20
    found = {(str(f.relative_to(REPO)), name) for f in files for name in module_caches(f)}
    assert found == ALLOWED


def test_the_check_sees_a_cache(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import weakref\nA = {}\nB: set = set()\nC = weakref.WeakKeyDictionary()\nD = {'k': 1}\n"
                     "def f():\n    e = {}\n")
    assert module_caches(probe) == ["A", "B", "C"]


HOST_ACCESS = re.compile(r"import comfy|from comfy|folder_paths|comfy\.|latent_preview|hasattr\(|getattr\(|model_options")
DOOR = {"nodes/host_api.py"}


def test_host_access_goes_through_host_api():
    """Every host import, version branch and look-up on host objects is in nodes/host_api.py (the one door)."""
    found = [f"{path.relative_to(REPO)}:{n}: {line.strip()}" for path in sorted(REPO.glob("nodes/*.py"))
             if str(path.relative_to(REPO)) not in DOOR
             for n, line in enumerate(path.read_text().splitlines(), 1) if HOST_ACCESS.search(line)]
    assert found == []
