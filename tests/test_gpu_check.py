"""scripts/gpu_check.py runs on the CPU at tiny sizes (CI), so the GPU check cannot rot: every section, sane numbers."""
import json
import math
import subprocess
import sys
from pathlib import Path

import torch

from instdiff_model.model import InstanceDiffusionModel

REPO = Path(__file__).resolve().parents[1]


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def patch_bytes_fp32(width: int) -> int:
    """Bytes of the fusers + ScaleU at UNet width `width` in fp32 (the CPU's `auto` storage), counted on the model."""
    with torch.device("meta"):
        model = InstanceDiffusionModel(width)
    return 4 * sum(p.numel() for part in (model.fusers, model.scaleu) for p in part.parameters())


def test_tiny_cpu_run_writes_every_section(tmp_path):
    """Slow by nature (~1 min on one core): the script itself in a child process, every section once at tiny sizes;
    a cheaper run would no longer be the script users run on their GPU."""
    subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--device", "cpu", "--tiny",
                    "--out", str(tmp_path)], check=True, timeout=600, cwd=REPO)
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert set(result) == {"unet_calls", "masked", "mis", "memory", "position_net", "environment"}

    rows = result["unet_calls"]
    assert {(r["dtype"], r["size"]) for r in rows} == {(d, s) for d in ("float32", "float16") for s in ("64x64", "96x64")}
    for r in rows:  # numbers checked against what the test knows independently of the script
        assert all(positive(r[k]) for k in ("plain_s", "patched_s", "ratio", "peak_bytes_patched"))
        assert r["steps"] == 3
        assert r["patch_weight_bytes"] == patch_bytes_fp32(32)  # the patch the Apply node adds, fp32 on the CPU
        # the host accounts for the patch weights it loads (its memory decisions see them)
        assert r["loaded_bytes_patched"] - r["loaded_bytes_plain"] >= r["patch_weight_bytes"] > 0
        assert r["accounted_includes_patch_weights"] is True
        assert r["fuser_weight_moves_per_run"] == 0  # CPU: load and offload device are the same

    masked = result["masked"]
    assert [(r["size"], r["layout"]) for r in masked["rows"]] == [
        (s, n) for s in ("64x64", "96x64") for n in ("10 instances", "3 instances")]
    for r in masked["rows"]:
        assert all(positive(r[f"{c}_s"]) for c in ("unmasked", "dense", "grouped"))
        assert r["grouped_over_dense"] == r["grouped_s"] / r["dense_s"]
    assert positive(masked["call_overhead_pairs"])

    assert [r["instances"] for r in result["mis"]] == [3, 10]
    # mis 0.5 of 4 steps: the official int(4 * 0.5) = 2 steps run n + 1 trajectories, so at most 1 + n * 2 / 4
    assert [(r["steps"], r["mis_steps"], r["bound"]) for r in result["mis"]] == [(4, 2, 2.5), (4, 2, 6.0)]
    for r in result["mis"]:
        assert positive(r["ratio"]) and positive(r["mis_s"]) and isinstance(r["within_bound"], bool)

    memory = result["memory"]
    assert memory["masked_attention"] and memory["peak_bytes"] >= memory["before_bytes"] > 0
    assert math.isfinite(memory["left_after_unload_bytes"])

    assert [r["instances"] for r in result["position_net"]] == [3, 10]
    assert all(positive(r["seconds"]) and r["dtype"] == "float32" for r in result["position_net"])

    env = result["environment"]
    assert env["device"] == "cpu" and env["tiny"] and set(env["section_seconds"]) == set(result) - {"environment"}
    report = (tmp_path / "gpu_check.md").read_text()
    assert "No GPU was used" in report and "| float16 | 96x64 |" in report and "| 10 |" in report
    assert all(f"| {r['ratio']:.3f} |" in report for r in rows)  # the report shows the measured rows
    assert all(f"| {r['instances']} | {r['ratio']:.2f} | {r['bound']:.2f} |" in report for r in result["mis"])
    assert "| 96x64 | 3 instances |" in report
