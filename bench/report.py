"""Benchmark reporting: the rows and details the sections measure, the console table and bench/RESULTS.md."""
import os
import platform
import subprocess
from pathlib import Path

from bench.common import GiB, REPO


# ----------------------------------------------------------------------------------------------- results
class Report:
    def __init__(self):
        self.rows = []      # (section, item, target, measured, ok)
        self.details = {}   # section -> list of markdown lines
        self.notes = {}

    def row(self, section, item, target, measured, ok=None):
        self.rows.append((section, item, target, measured, ok))
        status = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"  [{section}] {item}: {measured}   (target {target}) {status}", flush=True)

    def detail(self, section, line):
        self.details.setdefault(section, []).append(line)

    def table(self, section, *columns):
        """Start a Markdown table in a section's details (a blank line, the header row); rows follow via table_row."""
        self.detail(section, "")
        self.table_row(section, *columns)
        self.detail(section, "|" + "---|" * len(columns))

    def table_row(self, section, *cells):
        self.detail(section, "| " + " | ".join(str(c) for c in cells) + " |")


SECTION_TITLES = {
    1: "Instance tokenizer (position net): cost, and once per sampling run",
    2: "Time per UNet call, patched / plain, vs the FLOP bound",
    3: "Baseline: position net re-run in every fuser call (logtd design)",
    4: "Multi-instance sampler (MIS)",
    5: "Memory",
    6: "Converting an official-layout .pth",
    7: "Grouped masked attention: FLOP bounds, time per UNet call, memory",
}


# ----------------------------------------------------------------------------------------------- machine / output
def machine_description(m):
    import torch
    cpu = platform.processor() or "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines = [f"- CPU: {cpu}; {os.cpu_count()} logical cores, {len(os.sched_getaffinity(0))} usable by this process",
             f"- torch {torch.__version__}, {torch.get_num_threads()} intra-op threads; Python {platform.python_version()}"
             f"; {platform.platform()}"]
    try:
        mem = [l for l in open("/proc/meminfo") if l.startswith("MemTotal")][0].split()[1]
        lines.append(f"- RAM: {int(mem) / 2 ** 20:.1f} GiB")
    except (OSError, IndexError):
        pass
    if torch.cuda.is_available():
        lines.append(f"- GPU: {torch.cuda.get_device_name(0)} ({torch.cuda.get_device_properties(0).total_memory / GiB:.0f}"
                     f" GiB), CUDA {torch.version.cuda}")
    else:
        lines.append("- GPU: none")
    lines.append(f"- device used: {m.device}; host ComfyUI: {host_revision()}")
    return lines


def host_revision():
    try:
        from scripts.hostenv import host_dir
        rev = subprocess.run(["git", "-C", str(host_dir()), "log", "-1", "--format=%h %cd", "--date=short"],
                             capture_output=True, text=True).stdout.strip()
        return rev or "unknown"
    except Exception:  # noqa: BLE001
        return "unknown"


def write_results(path, rep: Report, m, args, cfg, elapsed, loads):
    lines = ["# InstanceDiffusion node pack: benchmark results", "",
             f"Produced by `.venv/bin/python bench/run.py{' --quick' if args.quick else ''} --device {args.device}` "
             f"(sections {','.join(map(str, args.sections))}) in {elapsed / 60:.1f} min. Random weights throughout "
             "(timing and memory do not depend on the values).", "", "## Machine", ""]
    lines += machine_description(m)
    lines.append(f"- load average (1 min) at start / end: {loads[0]:.2f} / {loads[1]:.2f} (the CPU is shared: timings "
                 "are medians of interleaved repeats, and section 2 also gives the in-call ratio)")
    lines += ["", "## Summary", "", "| # | item | target | measured | result |", "|---|---|---|---|---|"]
    for s, item, target, measured, ok in rep.rows:
        res = "-" if ok is None else ("**pass**" if ok else "**FAIL**")
        lines.append(f"| {s} | {item} | {target} | {measured} | {res} |")
    for s in sorted(set(rep.details) | set(rep.notes)):
        lines += ["", f"## {s}. {SECTION_TITLES[s]}", ""] + rep.details.get(s, [])
        if s in rep.notes:
            lines += [""] + rep.notes[s]
    notes = REPO / "bench" / "NOTES.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    Path(path).write_text("\n".join(lines) + "\n")


def print_table(rep: Report):
    headers = ("#", "item", "target", "measured", "result")
    rows = [(str(s), i, t, v, "-" if ok is None else ("pass" if ok else "FAIL")) for s, i, t, v, ok in rep.rows]
    widths = [min(60, max(len(h), *(len(r[k]) for r in rows))) if rows else len(h) for k, h in enumerate(headers)]
    fmt = "  ".join(f"{{:{w}.{w}}}" for w in widths)
    print()
    print(fmt.format(*headers))
    print(fmt.format(*("-" * w for w in widths)))
    for r in rows:
        print(fmt.format(*r))
