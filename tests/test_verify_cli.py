"""`python -m tools.verify DIR`: passes on the reference folder, fails on a perturbed or unknown case."""
import json
import shutil
import subprocess
import sys

from safetensors.torch import load_file, save_file

from refpaths import REPO, vectors_dir


def verify(folder):
    return subprocess.run([sys.executable, "-m", "tools.verify", str(folder)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def subset(tmp_path, cases):
    for case in cases:
        for ext in ("json", "safetensors"):
            shutil.copy(vectors_dir() / f"{case}.{ext}", tmp_path / f"{case}.{ext}")
    index = json.loads((vectors_dir() / "index.json").read_text())
    (tmp_path / "index.json").write_text(json.dumps({**index, "cases": cases}))


def test_reference_folder_passes():
    res = verify(vectors_dir())
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    cases = json.loads((vectors_dir() / "index.json").read_text())["cases"]
    for case in cases:
        line = next(l for l in lines if l.split()[0] == case)
        assert line.endswith("PASS") or "DATA" in line or "SKIP (whole-UNet case" in line, line
    assert sum(l.endswith("PASS") for l in lines) == len(cases) - 2
    assert "0 failure(s)" in res.stdout


def test_perturbed_output_fails(tmp_path):
    subset(tmp_path, ["fourier_embedder", "scaleu_block2", "preprocess"])
    path = tmp_path / "scaleu_block2.safetensors"
    tensors = load_file(str(path))
    tensors["out.h_cat"][0, 0, 0, 0] += 1e-3
    save_file(tensors, str(path))
    res = verify(tmp_path)
    assert res.returncode != 0
    line = next(l for l in res.stdout.splitlines() if l.startswith("scaleu_block2"))
    assert line.endswith("FAIL") and "max_abs_err=0.001" in line
    assert next(l for l in res.stdout.splitlines() if l.startswith("preprocess")).endswith("PASS")


def test_unknown_case_kind_fails(tmp_path):
    subset(tmp_path, ["fourier_embedder"])
    shutil.copy(vectors_dir() / "fourier_embedder.safetensors", tmp_path / "mystery_case.safetensors")
    (tmp_path / "mystery_case.json").write_text(json.dumps({"module": "something new"}))
    index = json.loads((tmp_path / "index.json").read_text())
    (tmp_path / "index.json").write_text(json.dumps({**index, "cases": ["fourier_embedder", "mystery_case"]}))
    res = verify(tmp_path)
    assert res.returncode != 0
    assert "mystery_case" in res.stdout and "unknown case kind" in res.stdout
