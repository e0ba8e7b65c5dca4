"""The editor's code (web/): no function over 40 lines, one table of kinds, constants shared with Python from one source."""
# Function lengths come from a small scanner (no JS parser needed): it skips comments, strings, template literals
# (with ${...} nesting) and regular expression literals, then matches braces. A brace block is a function body when
# it follows `=>`, or follows `(...)` that is not the head of if/for/while/switch/catch/with (a function, method,
# getter or setter). Arrow functions without braces are expressions, not counted. A function's length is its lines
# from the head's line to the closing brace, nested functions included (as eslint's max-lines-per-function counts).
import importlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from scripts import build_editor_constants

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "web"
EDITOR = WEB / "instdiff_editor"
MAX_LINES = 40
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node (Node.js) is not installed")

KEYWORDS = {"if", "for", "while", "switch", "catch", "with"}
# after these a "/" starts a regular expression literal, not a division
REGEX_BEFORE = set("(,=:[!&|?{};+-*%<>~^") | {""}


@dataclass
class Function:
    name: str
    first: int  # 1-based line of its head
    last: int  # 1-based line of its closing brace

    @property
    def lines(self) -> int:
        return self.last - self.first + 1


def _code_only(src: str) -> str:
    """The source with comments, strings, template text and regex literals blanked (newlines kept)."""
    out, i, n = list(src), 0, len(src)
    stack = []  # open template literals: the brace depth at each ${

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    depth, prev = 0, ""
    while i < n:
        c = src[i]
        if c == "/" and src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif c == "/" and src.startswith("/*", i):
            j = src.find("*/", i + 2) + 2
            blank(i, j)
            i = j
        elif c in "'\"":
            j = i + 1
            while src[j] != c:
                j += 2 if src[j] == "\\" else 1
            blank(i + 1, j)
            i, prev = j + 1, "a"
        elif c == "`" or (c == "}" and stack and stack[-1] == depth):
            if c == "}":
                stack.pop()
            j = i + 1
            while src[j] != "`" and not src.startswith("${", j):
                j += 2 if src[j] == "\\" else 1
            blank(i + 1, j)
            if src[j] == "`":
                i, prev = j + 1, "a"
            else:
                stack.append(depth)
                i, prev = j + 2, "{"
        elif c == "/" and (prev in REGEX_BEFORE or (prev == "w" and _word_before(src, i) in {"return", "typeof"})):
            j, in_class = i + 1, False
            while src[j] != "/" or in_class:
                in_class = (in_class or src[j] == "[") and src[j] != "]"
                j += 2 if src[j] == "\\" else 1
            blank(i + 1, j)
            i, prev = j + 1, "a"
        else:
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            if not c.isspace():
                prev = "w" if (c.isalnum() or c in "_$") else c
            i += 1
    return "".join(out)


def _word_before(src: str, end: int) -> str:
    m = re.search(r"[\w$]+$", src[max(0, end - 64):end].rstrip())
    return m.group(0) if m else ""


def functions(src: str) -> list[Function]:
    code = _code_only(src)
    line_of = lambda pos: code.count("\n", 0, pos) + 1  # noqa: E731
    opens, found, parens = [], [], []
    paren_open = {}
    for pos, c in enumerate(code):
        if c == "(":
            parens.append(pos)
        elif c == ")" and parens:
            paren_open[pos] = parens.pop()
        elif c == "{":
            opens.append(pos)
        elif c == "}" and opens:
            start = opens.pop()
            head = _function_head(code, start, paren_open)
            if head is not None:
                found.append(Function(head[1], line_of(head[0]), line_of(pos)))
    return sorted(found, key=lambda f: f.first)


def _function_head(code: str, brace: int, paren_open: dict):
    """(position, name) of the head of the function whose body opens at `brace`, or None for other blocks."""
    before = code[:brace].rstrip()
    if before.endswith("=>"):
        arrow = len(before) - 2
        lhs = code[:arrow].rstrip()
        start = paren_open.get(len(lhs) - 1, len(lhs) - len(_word_before(code, len(lhs))))
        m = re.search(r"([\w$]+)\s*[:=]\s*(?:async\s*)?$", code[:start])
        return start, (m.group(1) if m else "(arrow)")
    if not before.endswith(")"):
        return None
    start = paren_open.get(len(before) - 1)
    if start is None:
        return None
    name = _word_before(code, len(code[:start].rstrip()))
    if name in KEYWORDS or not name:
        return None
    m = re.search(r"([\w$]+)\s*[:=]\s*(?:async\s*)?function\s*$|function\s*\*?\s*([\w$]+)\s*$", code[:start])
    if name == "function" and m:
        name = m.group(1) or m.group(2)
    head = len(code[:start].rstrip()) - len(name)
    return head, name


SAMPLE = """// a { brace in a comment
const re = /[{}]+\\/{/g, s = "}{", t = `a ${ { a: 1 }.a } }`;
export function top(a) {
    if (a) { return a / 2; }
    const inner = (x) => {
        return x;
    };
    return { f() { return 1; } };
}
class C {
    method(a, b) {
        for (const x of a) { b(x); }
    }
    get value() { return 1; }
}
const arrow = async (e) => {
""" + "    e;\n" * 40 + "};\n"


def test_the_scanner_finds_functions_and_their_lengths():
    got = [(f.name, f.first, f.lines) for f in functions(SAMPLE)]
    assert got == [("top", 3, 7), ("inner", 5, 3), ("f", 8, 1), ("method", 11, 3), ("value", 14, 1), ("arrow", 16, 42)]


def test_no_editor_function_is_over_40_lines():
    long = [f"{path.relative_to(REPO)}:{f.first} {f.name} ({f.lines} lines)"
            for path in sorted(WEB.rglob("*.js")) for f in functions(path.read_text()) if f.lines > MAX_LINES]
    assert not long, f"split these into functions of at most {MAX_LINES} lines: {long}"


def test_the_shared_constants_are_generated_from_python():
    assert (EDITOR / "constants.js").read_text() == build_editor_constants.text(), \
        "web/instdiff_editor/constants.js is not current: run .venv/bin/python scripts/build_editor_constants.py"
    # and no other editor file has its own copy
    values = ['"instdiff.layout"', '"#e6194b"', "MAX_INSTANCES =", "VERSION ="]
    copies = [f"{p.name}: {v}" for p in WEB.rglob("*.js") if p.name != "constants.js" for v in values if v in p.read_text()]
    assert not copies, copies


def _node(script: str, payload=None):
    proc = subprocess.run(["node", "--input-type=module", "-e", script], input=json.dumps(payload), cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@needs_node
def test_the_kinds_table_mirrors_locations_py(pack):
    locations = importlib.import_module(pack.__name__ + ".instdiff_model.locations")
    table = _node(f"import * as k from {json.dumps((EDITOR / 'kinds.js').as_uri())};\n"
                  "const keys = (l) => l.map((kind) => kind.key);\n"
                  "console.log(JSON.stringify({kinds: k.KINDS.map((kind) => ({key: kind.key, letter: kind.letter,"
                  " methods: Object.keys(kind).filter((m) => typeof kind[m] === 'function').sort(),"
                  " tools: kind.tools.map((make) => make().id)})),"
                  " orders: [k.PAINT_ORDER, k.LABEL_ORDER, k.GRAB_ORDER, k.COVER_ORDER].map(keys)}));")
    assert [k["key"] for k in table["kinds"]] == list(locations.KEYS)
    assert len({k["letter"] for k in table["kinds"]}) == len(locations.KEYS)
    for kind in table["kinds"]:
        assert {"read", "has", "toJson", "scale", "draw", "anchor"} <= set(kind["methods"]), kind
        assert kind["tools"], kind
    paint, label, grab, cover = table["orders"]
    assert sorted(paint) == sorted(label) == sorted(locations.KEYS)
    assert [k for k in label if k != "mask"] == [k.key for k in locations.SHAPE_ORDER if k.key != "mask"]


def test_paint_and_pointer_handling_have_no_per_kind_branches():
    kinds = "|".join(build_editor_constants_keys())
    for name in ("paint.js", "tools.js"):
        text = (EDITOR / name).read_text()
        found = re.findall(rf"\.(?:{kinds})\b|[\"'](?:{kinds}|brush|eraser)[\"']", text)
        assert not found, f"{name} names kinds ({found}): that belongs in the kind's entry in kinds.js"


def build_editor_constants_keys():
    return json.loads(re.search(r"KIND_KEYS = (\[.*?\]);", (EDITOR / "constants.js").read_text()).group(1))


@needs_node
def test_the_mask_codec_agrees_with_python(pack):
    """rle.js decodes what instdiff_model/rle.py writes (compressed strings) and writes what it reads (run lists)."""
    rle = importlib.import_module(pack.__name__ + ".instdiff_model.rle")
    rng = np.random.default_rng(5)
    shapes = [(1, 1), (3, 7), (40, 33), (64, 100), (128, 96)]
    masks = [rng.random(s) < p for s in shapes for p in (0.0, 0.03, 0.5, 0.97, 1.0)]
    masks += [np.kron(rng.random((8, 6)) < 0.5, np.ones((16, 16), bool))]   # long runs: multi-chunk counts
    payload = [{"rle": rle.rle_encode(m), "mask": m.astype(int).ravel().tolist(), "h": m.shape[0], "w": m.shape[1]}
               for m in masks]
    out = _node(f"import {{ rleDecode, rleEncode }} from {json.dumps((EDITOR / 'rle.js').as_uri())};\n"
                "import fs from 'node:fs';\n"
                "const cases = JSON.parse(fs.readFileSync(0, 'utf8'));\n"
                "console.log(JSON.stringify(cases.map((c) => ({decoded: Array.from(rleDecode(c.rle, c.w, c.h)),"
                " encoded: rleEncode(Uint8Array.from(c.mask), c.w, c.h)}))));", payload)
    for m, got in zip(masks, out):
        assert np.array_equal(np.array(got["decoded"], bool).reshape(m.shape), m)
        assert np.array_equal(rle.rle_decode(got["encoded"], *m.shape), m)
