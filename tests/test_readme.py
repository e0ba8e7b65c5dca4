"""README and CONTRIBUTING tell the truth: node table, layout fields, named tests and file map match the code and tree."""
import ast
import importlib
import json
import re
import subprocess

import pytest

from scripts.hostenv import REPO

README = (REPO / "README.md").read_text()
CONTRIBUTING = (REPO / "CONTRIBUTING.md").read_text()
# folders whose every file the README's file map names (by name, in the bullet that starts with the folder)
MAPPED = {"instdiff_model": (".py",), "nodes": (".py",), "scripts": (".py", ".sh"), "bench": (".py",), "tools": (".py",)}


def section(title: str, doc: str = README) -> str:
    """The text of doc (the README unless told) under a heading, up to the next heading of any level."""
    m = re.search(rf"^#+ {re.escape(title)}\n", doc, re.M)
    assert m, f"no heading {title!r}"
    rest = doc[m.end():]
    nxt = re.search(r"^#+ ", rest, re.M)
    return rest[:nxt.start()] if nxt else rest


def table_rows(text: str) -> list:
    """Cells of the body rows of the first markdown table in text."""
    lines = [l for l in text.splitlines() if l.startswith("|")]
    return [[c.strip() for c in l.strip().strip("|").split("|")] for l in lines[2:]]


def names(cell: str) -> set:
    return set(re.findall(r"`([^`]+)`", cell))


def test_node_table_lists_every_input_of_every_node(pack):
    rows = table_rows(section("Nodes"))
    documented = {re.fullmatch(r"\*\*(.+)\*\*", row[0]).group(1): names(row[1]) for row in rows}
    long = {row[0]: len(row[2]) for row in rows if len(row[2]) > 160}
    assert not long, f"one line per node (details go to its help page in web/docs/): {long}"
    registered = {}
    for key, cls in pack.NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        registered[pack.NODE_DISPLAY_NAME_MAPPINGS.get(key, key)] = set(spec.get("required", {})) | set(
            spec.get("optional", {}))
    assert set(documented) == set(registered), (f"README rows without a node: {sorted(set(documented) - set(registered))}"
                                                f"; nodes without a row: {sorted(set(registered) - set(documented))}")
    wrong = {n: {"undocumented": sorted(registered[n] - documented[n]), "not an input": sorted(documented[n] - registered[n])}
             for n in registered if documented[n] != registered[n]}
    assert not wrong, wrong


def _refused_fields(layout_mod, errors, doc) -> set:
    """The field list of the schema's 'unknown field(s) ...; allowed: [...]' message for doc."""
    with pytest.raises(errors.InstDiffError) as info:
        layout_mod.Layout.from_json(doc)
    return set(ast.literal_eval(re.search(r"allowed: (\[[^\]]*\])", str(info.value)).group(1)))


def test_layout_json_table_matches_what_the_layout_node_accepts(pack):
    mod = lambda name: importlib.import_module(f"{pack.__name__}.{name}")  # noqa: E731
    layout_mod, errors = mod("instdiff_model.layout"), mod("instdiff_model.errors")
    rows = table_rows(section("Layout JSON", CONTRIBUTING))
    documented = {where: set().union(*(names(r[0]) for r in rows if r[1] == where)) for where in ("layout", "instance")}
    base = {"schema": "instdiff.layout", "version": 1, "width": 64, "height": 64, "caption": "", "instances": []}
    inst = {"caption": "a cube", "box": [8, 8, 16, 16]}
    schema = {"layout": _refused_fields(layout_mod, errors, dict(base, unknown_field=1)),
              "instance": _refused_fields(layout_mod, errors, dict(base, instances=[dict(inst, unknown_field=1)]))}
    node_cls = pack.NODE_CLASS_MAPPINGS["InstanceDiffusionLayout"]
    seed = [layout_mod.Layout.from_json(dict(base, instances=[inst]))]

    def build(doc):
        node = node_cls()
        return getattr(node, node_cls.FUNCTION)(width=64, height=64, caption="", layout_json=json.dumps(doc),
                                                seed_layout=seed)

    def doc_with(where, field, value):
        return dict(base, **{field: value}) if where == "layout" else dict(base, instances=[dict(inst, **{field: value})])

    records = set(re.findall(r'"(\w+)"', node_cls.DESCRIPTION))  # the editor's records the node describes
    table = "the Layout JSON table of CONTRIBUTING.md"
    assert records <= documented["layout"] | documented["instance"], f"not in {table}: {records}"
    for where in ("layout", "instance"):
        assert schema[where] <= documented[where], f"{where} fields not in {table}: {schema[where] - documented[where]}"
        value = [] if where == "layout" else 0
        with pytest.raises(errors.InstDiffError, match="unknown field"):
            build(doc_with(where, "unknown_field", value))  # the node refuses what it does not know ...
        for field in documented[where] - schema[where]:
            build(doc_with(where, field, value))  # ... and takes the editor's records the README documents


def test_every_test_the_docs_name_exists():
    assert not re.findall(r"test_\w+\.py::\w+", README), "the README speaks to users: test IDs go to CONTRIBUTING.md"
    named = set(re.findall(r"(test_\w+\.py)::(\w+)", CONTRIBUTING))
    assert len(named) > 20
    missing = []
    for file, name in sorted(named):
        path = REPO / "tests" / file
        if not path.exists() or not re.search(rf"^def {name}\(", path.read_text(), re.M):
            missing.append(f"{file}::{name}")
    assert not missing, f"CONTRIBUTING.md names tests that do not exist: {missing}"


def tree_files(folder: str, exts: tuple) -> set:
    """Top-level files of a folder as a clone has them (tracked or new, not ignored), __init__.py aside."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", folder], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.split()
    return {p.split("/")[1] for p in listed if p.count("/") == 1 and p.endswith(exts) and not p.endswith("__init__.py")
            and (REPO / p).exists()}


def test_file_map_matches_the_tree():
    text = section("File map", CONTRIBUTING)
    for folder, exts in MAPPED.items():
        bullet = re.search(rf"^- `{folder}/`(.*?)(?=^- |\Z)", text, re.M | re.S)
        assert bullet, f"the file map has no bullet for {folder}/"
        named = {n for n in names(bullet.group(1)) if re.fullmatch(r"[\w.]+", n) and n.endswith(exts)}
        files = tree_files(folder, exts)
        assert named == files, f"{folder}/: not in the tree {sorted(named - files)}, not in the map {sorted(files - named)}"
    paths = {p for p in re.findall(r"`([\w.-]+(?:/[\w.-]*)+)", text) if not p.startswith(".")}
    assert len(paths) > 5
    gone = sorted(p for p in paths if not (REPO / p).exists())
    assert not gone, f"the file map names paths that do not exist: {gone}"


def test_readme_starts_with_what_install_and_first_image():
    """A ComfyUI user reads what the pack does, how to install it and how to get a first image in the first screens."""
    lines = README.splitlines()
    heading_at = {l[3:]: i for i, l in enumerate(lines) if l.startswith("## ")}
    order = ["Install", "Weights", "Your first image", "Nodes"]
    assert all(h in heading_at for h in order), sorted(heading_at)
    assert [heading_at[h] for h in order] == sorted(heading_at[h] for h in order), heading_at
    assert heading_at["Your first image"] < 60, "the first image is more than a screen and a half down"
    intro = "\n".join(lines[:heading_at["Install"]])
    assert "docs/editor.png" in intro and "`make demo`" in intro and "`make test`" in intro and "CONTRIBUTING.md" in intro
    assert heading_at["Contributing"] == max(heading_at.values()), "contributors come last"
