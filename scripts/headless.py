"""Run API prompts on a ComfyUI host started as a subprocess, and convert UI-format workflows to API format."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .hostenv import REPO, host_dir

TEST_NODES = REPO / "tests" / "host_nodes"  # test-only custom nodes, never linked into the host's custom_nodes/
NON_EXECUTED = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}


class PromptError(RuntimeError):
    """A prompt the host refused or a node that raised; the message is the host's."""


class HostServer:
    """`python main.py --cpu` on a free port, with its own output/input folders; a context manager.

    test_nodes=True also loads the custom nodes in tests/host_nodes/ (an extra custom_nodes search path given
    through --extra-model-paths-config for this server only).
    """

    def __init__(self, extra_env=None, extra_args=(), workdir=None, test_nodes=False):
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="instdiff-host-"))
        self.output_dir = self.workdir / "output"
        self.input_dir = self.workdir / "input"
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.input_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "host.log"
        self.extra_env = dict(extra_env or {})
        self.extra_args = list(extra_args)
        if test_nodes:
            config = self.workdir / "test_nodes.yaml"
            config.write_text(json.dumps({"instdiff_test_nodes": {"custom_nodes": str(TEST_NODES)}}))  # JSON is YAML
            self.extra_args += ["--extra-model-paths-config", str(config)]
        self.proc = None
        self.url = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=240):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, **self.extra_env)
        cmd = [sys.executable, "main.py", "--cpu", "--use-pytorch-cross-attention", "--listen", "127.0.0.1",
               "--port", str(port), "--output-directory", str(self.output_dir),
               "--input-directory", str(self.input_dir), *self.extra_args]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=host_dir(), env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"host exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                self.object_info = self.get("/object_info")
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        raise RuntimeError(f"host did not answer within {timeout}s:\n{self.log()[-4000:]}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.proc:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path, payload):
        req = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                body = r.read()
                return json.loads(body) if body else {}
        except urllib.error.HTTPError as e:
            raise PromptError(f"host refused the prompt: {e.read().decode(errors='replace')}") from None

    def run(self, prompt: dict, timeout=1200) -> dict:
        """Queue an API prompt, wait for it, return its history entry; raise PromptError with the node's message."""
        pid = self.post("/prompt", {"prompt": prompt, "client_id": "instdiff-tests"})["prompt_id"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                hist = self.get(f"/history/{pid}")
            except TimeoutError:  # a busy (shared, swapping) machine: the host answers late, not never
                continue
            if pid in hist:
                entry = hist[pid]
                status = entry.get("status", {})
                if status.get("status_str") == "error":
                    msgs = [m[1] for m in status.get("messages", []) if m[0] == "execution_error"]
                    detail = "; ".join(f"{m.get('node_type')}: {m.get('exception_message', '').strip()}" for m in msgs)
                    raise PromptError(detail or json.dumps(status))
                return entry
            time.sleep(0.2)
        self.post("/interrupt", {})
        raise TimeoutError(f"prompt {pid} did not finish in {timeout}s")

    def output_files(self, entry: dict, node_id=None, kind="images"):
        """Paths of the files ("images" or "latents") a finished prompt saved (all nodes or one)."""
        paths = []
        for nid, out in entry.get("outputs", {}).items():
            if node_id is not None and str(nid) != str(node_id):
                continue
            for img in out.get(kind, []):
                base = self.output_dir if img.get("type") == "output" else self.workdir / "temp"
                paths.append(Path(base) / img.get("subfolder", "") / img["filename"])
        return paths


class PromptBuilder:
    """Build an API prompt node by node: `out = b.add("KSampler", model=m[0], ...)`; `m[0]` links output 0 of m."""

    def __init__(self):
        self.prompt = {}

    def add(self, class_type, **inputs):
        nid = str(len(self.prompt) + 1)
        self.prompt[nid] = {"class_type": class_type, "inputs": inputs}
        return _Node(nid)


class _Node(str):
    def __getitem__(self, slot):
        return [str(self), slot]


def _widget_slots(name, spec):
    """How many widgets_values slots one INPUT_TYPES entry takes in the UI (0 if it is a socket).

    A combo is a list (V1) or "COMBO" (V3 nodes); INT seeds get a second, "control after generate" slot when
    flagged (both frontends) or named seed / noise_seed (the 2024 frontend's rule; flagged seeds match it). A 2026
    BOUNDING_BOXES input is the box canvas widget unless it is socket-only (forceInput).
    """
    kind, opts = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    if kind == "BOUNDING_BOXES":
        return 0 if opts.get("forceInput") else 1
    if isinstance(kind, list) or kind == "COMBO":
        return 1 + (1 if opts.get("control_after_generate") else 0) + (1 if opts.get("image_upload") else 0)
    if kind in WIDGET_TYPES:
        seed = kind == "INT" and (opts.get("control_after_generate") or name in ("seed", "noise_seed"))
        return 1 + (1 if seed else 0)
    return 0


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow (what users save and share) to an API prompt, like the frontend does."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {l[0]: l for l in workflow.get("links", [])}

    def source(link_id):
        from_id, from_slot = links[link_id][1], links[link_id][2]
        src = nodes[from_id]
        if src["type"] == "Reroute":
            return source(src["inputs"][0]["link"])
        if src["type"] == "PrimitiveNode":
            return ("value", src["widgets_values"][0])
        return ("link", [str(from_id), from_slot])

    prompt = {}
    for nid, node in nodes.items():
        if node["type"] in NON_EXECUTED or node.get("mode", 0) == 2:
            continue
        if node.get("mode", 0) == 4:
            raise ValueError(f"node {nid} ({node['type']}) is bypassed; the converter does not support bypass")
        info = object_info.get(node["type"])
        if info is None:
            raise ValueError(f"node {nid}: type {node['type']!r} is not registered on the host")
        linked = {i["name"]: i.get("link") for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        inputs, pos = {}, 0
        for section in ("required", "optional"):
            for name, spec in info["input"].get(section, {}).items():
                slots = _widget_slots(name, spec)
                if slots:
                    if pos < len(values):  # the frontend wraps list values (canvas state): bare lists are links
                        value = values[pos]
                        inputs[name] = {"__value__": value} if isinstance(value, list) else value
                    pos += slots
                if name in linked:
                    kind, val = source(linked[name])
                    inputs[name] = val
        prompt[str(nid)] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def load_workflow(path) -> dict:
    return json.loads(Path(path).read_text())
