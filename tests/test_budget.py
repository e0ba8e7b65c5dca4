"""Resource budget: crafted weights files refused with a clear message at bounded peak RSS; layout size limits."""
import collections
import io
import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from instdiff_model import interop, limits
from instdiff_model.errors import InstDiffError
from instdiff_model.importers import from_coco, from_official_demo
from instdiff_model.keyframes import check_keyframes_cost
from instdiff_model.layout import Instance, Layout, location_cost
from instdiff_model.pickle_budget import Budget, scan
from instdiff_model.values import check_cost, decode_json

REPO = Path(__file__).resolve().parents[1]
SPEC = {"scaleu_b_0": (3,)}  # one expected key: what a crafted file must get past to reach its storage
PEAK_LIMIT_MIB = 256


# ----------------------------------------------------------------------------------------------- crafting files
def _zip(path, entries, count=None):
    """A zip of (name, stored bytes, method, declared size) entries with zip64 end records; `count` overrides the
    number of central-directory entries (they repeat the last entry)."""
    out, central = bytearray(), []
    for name, data, method, size in entries:
        n, offset, big = name.encode(), len(out), size >= 0xFFFFFFFF
        usize, csize = (0xFFFFFFFF, 0xFFFFFFFF) if big else (size, len(data))
        crc = zlib.crc32(data) if method == 0 and size == len(data) else 0
        extra = struct.pack("<HHQQ", 1, 16, size, len(data)) if big else b""
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 45, 0, method, 0, 0, crc, csize, usize, len(n), 0) + n + data
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 45, 45, 0, method, 0, 0, crc, csize, usize, len(n),
                                   len(extra), 0, 0, 0, 0, offset) + n + extra)
    entries_total = len(central) if count is None else count
    directory = b"".join(central) if count is None else b"".join(central) + central[-1] * (count - len(central))
    at = len(out) + len(directory)
    end = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries_total, entries_total,
                      len(directory), len(out))
    end += struct.pack("<4sLQL", b"PK\x06\x07", 0, at, 1)
    end += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(path, "wb") as f:
        f.write(out)
        f.write(directory)
        f.write(end)
    return path


def _torch_zip(path, pickle_bytes, storages=(), **kw):
    entries = [("archive/data.pkl", pickle_bytes, 0, len(pickle_bytes)), ("archive/byteorder", b"little", 0, 6)]
    return _zip(path, entries + list(storages), **kw)


def _in_ema(value: bytes) -> bytes:
    """Protocol-2 pickle of {'ema': <value>} (value: the opcodes that push it)."""
    return b"\x80\x02}X\x03\x00\x00\x00ema" + value + b"s."


def _long(n: int) -> bytes:
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little")
    return b"\x8a" + bytes([len(raw)]) + raw


def _deflate_bomb(prefix: bytes, inflated: int) -> bytes:
    """A raw deflate stream of `prefix` then `inflated` bytes of 'a', made cheaply from one repeated segment."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    segment = c.compress(b"a" * (1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return head + segment * (inflated >> 20) + c.flush()


def _nested_lists(width: int, depth: int) -> bytes:
    """Pickle ops pushing a list holding `width` references to a list holding ... (`depth` levels)."""
    ops = b"]q\x000"
    for level in range(1, depth + 1):
        ops += b"](" + (b"h" + bytes([level - 1])) * width + b"eq" + bytes([level]) + b"0"
    return ops + b"h" + bytes([depth])


def _storage_pickle(numel: int) -> bytes:
    """{'ema': {'scaleu_b_0': tensor of shape (3,) in storage '0' that claims `numel` elements}}."""
    record = (b"ctorch._utils\n_rebuild_tensor_v2\n(" b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000"
              b"X\x03\x00\x00\x00cpu" + _long(numel) + b"tQK\x00K\x03\x85K\x01\x85\x89ccollections\nOrderedDict\n)RtR")
    return _in_ema(b"}X\n\x00\x00\x00scaleu_b_0" + record + b"s")


def _crafted(tmp: Path) -> dict:
    """{case: (path, words the refusal must contain)}; every file is small or sparse on disk."""
    cases = {}

    def add(name, path, words):
        cases[name] = (str(path), words)

    add("bytearray", _torch_zip(tmp / "bytearray.pth", _in_ema(b"c__builtin__\nbytearray\n" + _long(1 << 29) + b"\x85R")),
        "bytearray(int)")
    add("bytes", _torch_zip(tmp / "bytes.pth", _in_ema(b"cbuiltins\nbytes\n" + _long(1 << 29) + b"\x85R")), "bytes(int)")
    add("bytes_newobj", _torch_zip(tmp / "newobj.pth", _in_ema(b"cbuiltins\nbytes\n" + _long(1 << 29) + b"\x85\x81")),
        "does not unpack")
    add("repr_bomb", _torch_zip(tmp / "repr.pth", _in_ema(b"cbuiltins\nstr\n" + _nested_lists(40, 5) + b"\x85R")),
        "str(list)")
    copies = b"N" * 100_000
    add("copy_bomb", _torch_zip(tmp / "copies.pth", _in_ema(
        b"](" + copies + b"eq\x000cbuiltins\nlist\nq\x010](" + b"h\x01h\x00\x85R" * 1000 + b"e")), "bytes per byte")
    add("empty_sets", _torch_zip(tmp / "sets.pth", b"\x80\x04" + b"\x8f" * (2 << 20) + b"."), "bytes per byte")
    add("memo_index", _torch_zip(tmp / "memo.pth", b"\x80\x02Nr" + struct.pack("<I", 1 << 26) + b"."),
        "memo entry 67108864")
    add("deep_tuple_key", _torch_zip(tmp / "deep.pth", _in_ema(b"}" + b")" + b"\x85" * 200_000 + b"Ns")),
        "deeper than 100")
    add("hash_dag", _torch_zip(tmp / "dag.pth", _in_ema(b"}" + b")q\x000" + b"".join(
        b"(" + (b"h" + bytes([i])) * 8 + b"tq" + bytes([i + 1]) + b"0" for i in range(30)) + b"h\x1eNs")),
        "hashes nested tuples")
    header = b"\x80\x04\x8d" + struct.pack("<Q", 1 << 30)
    bomb = _deflate_bomb(header, 1 << 30)
    add("zip_bomb", _zip(tmp / "zipbomb.pth", [("archive/data.pkl", bomb, 8, len(header) + (1 << 30))]), "declares")
    add("zip_bomb_lying", _zip(tmp / "zipbomb2.pth", [("archive/data.pkl", bomb, 8, 1000)]), "bytes it declares")
    add("zip_entries", _zip(tmp / "entries.pth", [("archive/data.pkl", _in_ema(b"N"), 0, 14), ("", b"", 0, 0)],
                            count=10 ** 6), "1,000,000 entries")
    add("storage_claim", _torch_zip(tmp / "storage.pth", _storage_pickle(10 ** 12),
                                    [("archive/data/0", b"\0" * 12, 0, 4 * 10 ** 12)]), "claims 1,000,000,000,000")
    shapes = json.dumps({"scaleu_b_0": {"dtype": "F32", "shape": [10 ** 6, 10 ** 6], "data_offsets": [0, 4 * 10 ** 12]}})
    (tmp / "shapes.safetensors").write_bytes(struct.pack("<Q", len(shapes)) + shapes.encode() + b"\0" * 12)
    add("safetensors_shapes", tmp / "shapes.safetensors", "shape [1000000, 1000000]")
    with open(tmp / "header.safetensors", "wb") as f:  # sparse: 512 MiB of header on disk costs nothing
        f.write(struct.pack("<Q", 512 << 20) + b"{")
        f.truncate(8 + (512 << 20) + 16)
    add("safetensors_header", tmp / "header.safetensors", "header claims 536,870,912 bytes (the limit is 4 MiB)")
    return cases


_CHILD = textwrap.dedent("""
    import gc, json, sys
    sys.path.insert(0, sys.argv[1])
    from instdiff_model.checkpoint import read_weights
    from instdiff_model.errors import InstDiffError

    def hwm():
        return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) >> 10

    import time
    spec, results = json.loads(sys.argv[2]), {}
    for name, path in json.loads(sys.argv[3]).items():
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as f:  # reset the peak to the current RSS
                f.write("5")
        except OSError:
            pass
        base, start = hwm(), time.perf_counter()
        try:
            read_weights(path, spec={k: tuple(v) for k, v in spec.items()})
            message = None
        except InstDiffError as e:
            message = str(e)
        results[name] = {"message": message, "peak_mib": hwm() - base, "base_mib": base,
                         "seconds": round(time.perf_counter() - start, 2)}
    print(json.dumps(results))
""")


def _run_child(paths: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(REPO), json.dumps(SPEC), json.dumps(paths)],
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, f"child died (rc {out.returncode}): {out.stderr[-2000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def _peak_resets() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc (Linux)")
def test_crafted_weights_files_are_refused_at_bounded_peak_rss(tmp_path):
    cases = _crafted(tmp_path)
    paths = {name: path for name, (path, _) in cases.items()}
    if _peak_resets():
        results = _run_child(paths)
    else:  # no way to reset the peak: one child per file
        results = {name: _run_child({name: path})[name] for name, path in paths.items()}
    Path(cases["zip_entries"][0]).unlink()  # 46 MB of central directory: do not keep it in pytest's tmp folders
    for name, (path, words) in cases.items():
        got = results[name]
        assert got["message"] is not None, f"{name}: read without an error"
        assert path in got["message"] and words in got["message"], f"{name}: {got['message'][:400]}"
        assert "not a plain weights file" in got["message"], f"{name}: {got['message'][:400]}"
        assert got["peak_mib"] < PEAK_LIMIT_MIB, f"{name}: peak RSS {got['peak_mib']} MiB above the baseline"


def _official_like_pickle(n_keys: int) -> bytes:
    """data.pkl of a training checkpoint: 'model', 'ema' and Adam state of n_keys tensors, a nested config object."""
    tensors = lambda: collections.OrderedDict((f"model.diffusion_model.block.{i}.weight", torch.zeros(2)) for i in range(n_keys))
    config = {"model": {"params": {f"k{i}": {"lr": 1e-4, "ids": [1, 2, 3], "name": "x" * 20} for i in range(50)}}}
    ckpt = {"model": tensors(), "ema": tensors(), "config": config, "iters": 1000,
            "opt": {"state": {i: {"step": 7, "exp_avg": torch.zeros(2), "exp_avg_sq": torch.zeros(2)} for i in range(n_keys)},
                    "param_groups": [{"lr": 1e-4, "params": list(range(n_keys)), "betas": (0.9, 0.999)}]}}
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    import zipfile
    with zipfile.ZipFile(buf) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))


def test_a_real_checkpoints_pickle_uses_well_under_half_its_budget():
    """Thousands of records (4 per key, as in the official file): the scan's estimate stays below half the
    budget, so the budget refuses bombs (tests above) without coming near real files."""
    data = _official_like_pickle(1000)
    budget = Budget(len(data), "official.pth")
    start = budget.memory
    scan(data, budget)
    assert (start - budget.memory) / len(data) < limits.PICKLE_MEMORY_PER_BYTE / 2


# ----------------------------------------------------------------------------------------------------- layouts
def test_json_inputs_longer_than_the_limit_are_refused_before_decoding():
    text = "[" * (limits.MAX_JSON_CHARS + 1)  # would be a nesting error if it were decoded
    for call, what in ((lambda: Layout.from_json(text), "layout"),
                       (lambda: from_official_demo(text), "demo layout"), (lambda: from_coco(text), "COCO annotations"),
                       (lambda: interop.from_box_list(text, "xyxy", (64, 64)), "boxes"),
                       (lambda: interop.from_bounding_box(text), "BOUNDING_BOX"),
                       (lambda: interop.from_elements(text), "elements")):
        with pytest.raises(InstDiffError, match=f"^{what} is 67,108,865 characters long; the limit is 67,108,864 "
                                                r"\(MAX_JSON_CHARS"):
            call()
    assert decode_json("[1]" + " " * (limits.MAX_JSON_CHARS - 3), "x") == [1]  # at the limit: decoded


def test_points_are_counted_before_any_point_list_is_built():
    too_many = limits.MAX_LAYOUT_POINTS + 1
    with pytest.raises(InstDiffError, match="1,048,577 scribble/polygon points; the limit is 1,048,576"):
        Layout(64, 64, instances=[Instance("a", scribble=[[1, 1]] * too_many)])  # a 10^8-point one alike
    rings = {"schema": "instdiff.layout", "version": 1, "width": 64, "height": 64, "instances": [
        {"caption": "a", "polygon": [[[1, 1]] * (too_many // 2), [[2, 2]] * (too_many - too_many // 2)]}]}
    with pytest.raises(InstDiffError, match="MAX_LAYOUT_POINTS"):
        Layout.from_json(rings)
    with pytest.raises(InstDiffError, match="MAX_LAYOUT_POINTS"):  # COCO flat rings: two numbers per point
        from_coco({"images": [{"id": 1, "width": 64, "height": 64}], "annotations": [
            {"image_id": 1, "category_id": 1, "segmentation": [[1.0] * (2 * too_many)]}]})
    assert location_cost([Instance("a", scribble=[[1, 1]] * 20, polygon=[[[0, 0], [1, 0], [1, 1]]] * 2)]) == (26, 0)


def _rle_dict(h, w):
    return {"size": [h, w], "counts": [0, h * w]}


def test_thirty_masks_at_8192_fit_and_more_mask_pixels_are_refused_before_decoding():
    thirty = {"schema": "instdiff.layout", "version": 1, "width": 8192, "height": 8192,
              "instances": [{"caption": f"i{k}", "mask": _rle_dict(8192, 8192)} for k in range(30)]}
    assert location_cost(thirty["instances"]) == (0, 30)
    check_cost(0, 30 * 8192 * 8192, "30 masks")  # the largest layout is within the budget
    check_keyframes_cost([(0, thirty)], 16)  # one keyframe: every frame holds it, nothing is copied
    with pytest.raises(InstDiffError, match=r"mask pixels in all; the limit is 2,013,265,920 \(30 masks at 8192x8192"):
        check_keyframes_cost([(0, thirty), (8, thirty)], 16)
    small = dict(thirty, width=512, height=512, instances=[{"caption": "a", "mask": _rle_dict(512, 512)}])
    check_keyframes_cost([(0, small), (15, small)], 16)
    demo = {"width": 8192, "height": 8192, "annos": [{"caption": f"i{k}", "mask": _rle_dict(8192, 8192)}
                                                     for k in range(31)]}
    with pytest.raises(InstDiffError, match="^demo layout has 2,080,374,784 mask pixels"):
        from_official_demo(demo)  # refused before 31 masks of 64 MB are decoded
    seg = (None, np.ones((1, 1), np.float32), 0.9, [0, 0, 1, 1], [0, 0, 1, 1], "a", None)
    with pytest.raises(InstDiffError, match="MAX_MASK_PIXELS"):
        interop.from_segs(((100_000, 100_000), [seg]))  # refused before a 10^10-pixel canvas is made
    dets = [interop.Detection(f"MASK item {k}", "a", mask=np.ones((4, 4), bool), size=(4, 4)) for k in range(31)]
    with pytest.raises(InstDiffError, match="the imported detections has 2,080,374,784 mask pixels"):
        interop.detections_to_instances(dets, 8192, 8192)


def test_keyframes_node_counts_before_decoding_and_still_interpolates(pack):
    import importlib
    node = importlib.import_module(pack.__name__ + ".nodes.layout").LayoutKeyframes()
    big = {"schema": "instdiff.layout", "version": 1, "width": 8192, "height": 8192,
           "instances": [{"caption": f"i{k}", "mask": _rle_dict(8192, 8192)} for k in range(30)]}
    with pytest.raises(ValueError, match="2 keyframes over 16 frames has .* mask pixels in all"):
        node.build(json.dumps([{"frame": 0, "layout": big}, {"frame": 8, "layout": json.dumps(big)}]), 16)
    small = {"schema": "instdiff.layout", "version": 1, "width": 64, "height": 64,
             "instances": [{"caption": "a", "box": [0, 0, 8, 8]}]}
    moved = dict(small, instances=[{"caption": "a", "box": [8, 0, 8, 8]}])
    (frames,) = node.build(json.dumps([{"frame": 0, "layout": small}, {"frame": 2, "layout": json.dumps(moved)}]), 3)
    assert [f.instances[0].box for f in frames] == [(0, 0, 8, 8), (4, 0, 8, 8), (8, 0, 8, 8)]
