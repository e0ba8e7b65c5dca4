"""Every product node explains itself: input tooltips, output tooltips, search aliases, a short description, a help page."""
import re
import urllib.request

import pytest

from scripts import build_node_docs
from scripts.hostenv import REPO


def inputs(cls) -> dict:
    spec = cls.INPUT_TYPES()
    return {name: s for section in ("required", "optional") for name, s in spec.get(section, {}).items()}


def outputs(cls) -> list:
    return list(getattr(cls, "RETURN_NAMES", None) or [t.lower() for t in cls.RETURN_TYPES])


def test_every_input_has_a_tooltip(pack):
    missing = {key: [n for n, s in inputs(cls).items()
                     if not (len(s) > 1 and isinstance(s[1], dict) and len(s[1].get("tooltip", "").strip()) >= 12)]
               for key, cls in pack.NODE_CLASS_MAPPINGS.items()}
    missing = {key: names for key, names in missing.items() if names}
    assert not missing, f"inputs without a tooltip: {missing}"


def test_every_output_has_a_tooltip(pack):
    wrong = [key for key, cls in pack.NODE_CLASS_MAPPINGS.items()
             if len(getattr(cls, "OUTPUT_TOOLTIPS", ())) != len(cls.RETURN_TYPES)
             or not all(isinstance(t, str) and len(t.strip()) >= 12 for t in cls.OUTPUT_TOOLTIPS)]
    assert not wrong, f"OUTPUT_TOOLTIPS missing or not one per output: {wrong}"


def test_every_node_has_search_aliases_and_a_short_description(pack):
    for key, cls in pack.NODE_CLASS_MAPPINGS.items():
        aliases = getattr(cls, "SEARCH_ALIASES", None)
        assert isinstance(aliases, list) and len(aliases) >= 3 and all(isinstance(a, str) and a for a in aliases), key
        sentences = [s for s in re.split(r"(?<=[.;!?])\s+", cls.DESCRIPTION.strip()) if s]
        assert len(cls.DESCRIPTION) <= 300 and len(sentences) <= 3, f"{key}: {len(cls.DESCRIPTION)} characters"
    found = {a for cls in pack.NODE_CLASS_MAPPINGS.values() for a in cls.SEARCH_ALIASES}
    assert {"bbox", "gligen", "layout"} <= found and any("regional" in a for a in found)


def section(text: str, title: str) -> str:
    m = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"no '## {title}' section"
    return m.group(1)


def test_every_node_has_a_help_page_naming_every_input_and_output(pack):
    for key, cls in pack.NODE_CLASS_MAPPINGS.items():
        path = REPO / "web" / "docs" / f"{key}.md"
        assert path.exists(), f"no help page {path.relative_to(REPO)}: run scripts/build_node_docs.py"
        text = path.read_text()
        named_in = set(re.findall(r"^\| `([^`]+)` \|", section(text, "Inputs"), re.M))
        named_out = set(re.findall(r"^\| `([^`]+)` \|", section(text, "Outputs"), re.M))
        assert named_in == set(inputs(cls)), f"{key}: page inputs {sorted(named_in ^ set(inputs(cls)))} differ"
        assert named_out == set(outputs(cls)), f"{key}: page outputs differ"
        assert section(text, "Tip").strip() and text.startswith("# ")


def test_help_pages_are_what_the_generator_writes(pack):
    stale = [name for name, text in build_node_docs.pages().items()
             if (REPO / "web" / "docs" / name).read_text() != text]
    assert not stale, f"help pages out of date: {stale}; run scripts/build_node_docs.py"
    extra = {p.name for p in (REPO / "web" / "docs").glob("*.md")} - set(build_node_docs.pages())
    assert not extra, f"help pages of no node: {sorted(extra)}"


def test_help_pages_are_served_where_the_frontend_looks(host):
    """Frontend nodeHelpService: /extensions/<custom_nodes folder>/docs/<NodeClass>.md after a <locale>.md try;
    a text/html answer (the SPA fallback) counts as missing there."""
    info = host.object_info["ApplyInstanceDiffusion"]
    module = info.get("python_module", "custom_nodes.comfyui-instancediffusion")  # 2024 host: no python_module
    folder = module.split(".")[1]
    with urllib.request.urlopen(f"{host.url}/extensions/{folder}/docs/ApplyInstanceDiffusion.md", timeout=30) as r:
        body, ctype = r.read().decode(), r.headers.get("Content-Type", "")
    assert "text/html" not in ctype and body == (REPO / "web/docs/ApplyInstanceDiffusion.md").read_text()
    assert body.startswith("# Apply InstanceDiffusion")
    with pytest.raises(urllib.error.HTTPError):  # the locale try misses cleanly and falls back
        urllib.request.urlopen(f"{host.url}/extensions/{folder}/docs/ApplyInstanceDiffusion/en.md", timeout=30)
