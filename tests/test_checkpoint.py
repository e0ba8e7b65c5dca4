"""Checkpoint reading: official-layout .pth, conversion, logtd split files, hostile and broken files."""
import builtins
import collections
import json
import os
import struct
import subprocess
import sys
import types

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from instdiff_model.checkpoint import expected_spec, read_weights, validate
from instdiff_model.convert import cached_copy, convert, main
from instdiff_model.errors import InstDiffError
from instdiff_model.model import InstanceDiffusionModel
from refpaths import official_keys

BASE_KEYS = {"input_blocks.0.0.weight": (4, 4, 3, 3), "time_embed.0.weight": (5, 3), "out.0.bias": (4,)}


@pytest.fixture(scope="module")
def spec():
    """The official 513 keys with every dimension cut to <= 3 (real shapes are checked separately)."""
    return {k: tuple(min(s, 3) for s in shape) for k, shape in official_keys().items()}


def _state(spec, seed):
    g = torch.Generator().manual_seed(seed)
    shapes = {**spec, **BASE_KEYS}
    return collections.OrderedDict((k, torch.randn(shape, generator=g)) for k, shape in shapes.items())


class FakeDictConfig:
    """Stands for an OmegaConf object; pickled under a module that does not exist at load time."""

    def __init__(self):
        self.content = {"model": {"target": "ldm.models"}, "lr": 1e-4}


def _save_official(path, spec, extra=None):
    model, ema = _state(spec, 0), _state(spec, 1)
    fake = types.ModuleType("fake_omegaconf_dictconfig")
    FakeDictConfig.__module__ = fake.__name__
    fake.FakeDictConfig = FakeDictConfig
    sys.modules[fake.__name__] = fake
    try:
        ckpt = {
            "model": model,
            "ema": ema,
            "opt": {"state": {0: {"step": 7, "exp_avg": torch.randn(6, 3)}}, "param_groups": [{"lr": 1e-4, "params": [0]}]},
            "config": FakeDictConfig(),
            "iters": 1000,
        }
        ckpt.update(extra or {})
        torch.save(ckpt, path)
    finally:
        del sys.modules[fake.__name__]
    return model, ema


def _assert_same(loaded, reference, spec):
    assert set(loaded) == set(spec)
    for key in spec:
        assert torch.equal(loaded[key], reference[key]), key


def test_official_layout_ema_and_model(tmp_path, spec):
    path = tmp_path / "instancediffusion_sd15.pth"
    model, ema = _save_official(path, spec)
    with pytest.raises(ModuleNotFoundError):  # plain unpickling would need the config class
        torch.load(path, weights_only=False)
    _assert_same(read_weights(path, spec=spec), ema, spec)
    _assert_same(read_weights(path, weights="model", spec=spec), model, spec)
    with pytest.raises(InstDiffError, match="'ema' or 'model'"):
        read_weights(path, weights="emma", spec=spec)


def test_convert_roundtrip(tmp_path, spec, capsys):
    src, out32, out16 = tmp_path / "in.pth", tmp_path / "out32.safetensors", tmp_path / "out16.safetensors"
    _, ema = _save_official(src, spec)
    info = convert(src, out32, dtype="fp32", spec=spec)
    assert info["keys"] == 513
    _assert_same(read_weights(out32, spec=spec), ema, spec)
    with safe_open(str(out32), "pt") as f:
        assert f.metadata()["weights"] == "ema" and f.metadata()["format"] == "instancediffusion"
        assert set(f.keys()) == set(spec)
    convert(src, out16, weights="model", spec=spec)
    back = read_weights(out16, spec=spec)
    model = _state(spec, 0)
    for key in spec:
        assert back[key].dtype == torch.float16
        torch.testing.assert_close(back[key].float(), model[key], atol=2e-3, rtol=1e-3)
    assert main([str(tmp_path / "missing.pth"), str(tmp_path / "x.safetensors")]) == 1
    assert "error" in capsys.readouterr().err


def test_cached_copy_is_written_once_exact_and_follows_its_source(tmp_path, spec):
    """The first load writes a safetensors copy of the chosen weights (the source's dtype: exact) with progress; a
    later load reuses it untouched; a changed source (size or mtime) or the other weights write a new one."""
    src, cache = tmp_path / "models" / "instancediffusion_sd15.pth", tmp_path / "user" / "__instancediffusion"
    src.parent.mkdir()
    model, ema = _save_official(src, spec)
    seen = []
    copy, why = cached_copy([str(src)], "ema", str(cache), progress=lambda done, total: seen.append((done, total)),
                            spec=spec)
    assert why == "" and os.path.dirname(copy) == str(cache) and os.listdir(cache) == [os.path.basename(copy)]
    assert os.path.basename(copy).startswith("instancediffusion_sd15.ema.") and os.listdir(src.parent) == [src.name]
    _assert_same(read_weights(copy, spec=spec), ema, spec)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] == seen[-1][1] and len(seen) > 2
    stat = os.stat(copy)
    assert cached_copy([str(src)], "ema", str(cache), spec=spec) == (copy, "")
    assert (os.stat(copy).st_ino, os.stat(copy).st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    other, _ = cached_copy([str(src)], "model", str(cache), spec=spec)
    assert other != copy
    _assert_same(read_weights(other, spec=spec), model, spec)
    _save_official(src, spec, extra={"iters": 2000})
    os.utime(src, ns=(stat.st_mtime_ns + 10**9, stat.st_mtime_ns + 10**9))
    assert cached_copy([str(src)], "ema", str(cache), spec=spec) == (copy, "")
    assert os.stat(copy).st_ino != stat.st_ino and len(os.listdir(cache)) == 2


def test_cached_copy_gives_way_where_it_cannot_write(tmp_path, spec, monkeypatch):
    """No copy (and the reason) when the cache folder cannot be made or its disk is full; a bad source still raises
    its own error and leaves no partial file."""
    src = tmp_path / "instancediffusion_sd15.pth"
    _save_official(src, spec)
    (tmp_path / "a_file").write_bytes(b"")
    path, why = cached_copy([str(src)], "ema", str(tmp_path / "a_file" / "cache"), spec=spec)
    assert path is None and "cannot use the cache folder" in why
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr("instdiff_model.convert.shutil.disk_usage", lambda p: usage(1 << 30, 1 << 30, 1 << 20))
    path, why = cached_copy([str(src)], "ema", str(tmp_path / "cache"), spec=spec)
    assert path is None and "GiB free" in why
    monkeypatch.undo()
    (tmp_path / "cut.pth").write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(InstDiffError, match="truncated or corrupted"):
        cached_copy([str(tmp_path / "cut.pth")], "ema", str(tmp_path / "cache"), spec=spec)
    assert os.listdir(tmp_path / "cache") == []


def test_convert_cli_on_official_spec(tmp_path):
    """Real key names and shapes through the command line (position net and fusers cut to their real sizes)."""
    real = expected_spec()
    assert real == official_keys()
    sd = {k: torch.full(shape, 0.5) for k, shape in real.items() if k.startswith("scaleu_")}
    sd.update({k: torch.zeros(shape) for k, shape in real.items() if not k.startswith("scaleu_")})
    save_file(sd, tmp_path / "full.safetensors")
    result = subprocess.run(
        [sys.executable, "-m", "instdiff_model.convert", str(tmp_path / "full.safetensors"),
         str(tmp_path / "small.safetensors"), "--dtype", "fp16"],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert result.returncode == 0, result.stderr
    assert "513 tensors" in result.stdout and "fp16" in result.stdout
    back = read_weights(tmp_path / "small.safetensors")
    assert back["scaleu_s_3"].dtype == torch.float16 and float(back["scaleu_s_3"]) == 0.5
    model = InstanceDiffusionModel.from_file(tmp_path / "small.safetensors", dtype=torch.float32)
    assert model.scaleu.scaleu_s_3.dtype == torch.float32 and float(model.scaleu.scaleu_s_3) == 0.5
    assert not model.fusers[15].linear.weight.any() and model.position_net.pos_embedding.shape == (1, 64, 3072)


def test_comfy_prefixed_safetensors(tmp_path, spec):
    ema = _state(spec, 3)
    save_file({"model.diffusion_model." + k: v for k, v in ema.items()}, tmp_path / "p.safetensors")
    _assert_same(read_weights(tmp_path / "p.safetensors", spec=spec), ema, spec)


def test_logtd_split_files(tmp_path, spec):
    ema = _state(spec, 4)
    blocks = sorted({k.split(".transformer_blocks")[0] for k in spec if ".fuser." in k},
                    key=lambda b: (["input_blocks", "middle_block", "output_blocks"].index(b.split(".")[0]),
                                   int(b.split(".")[1])))
    fusers = {"input_blocks": {}, "middle_block": {}, "output_blocks": {}}
    for block in blocks:
        group, index = block.split(".")[:2]
        prefix = block + ".transformer_blocks.0.fuser."
        fusers[group][index] = {"params": {"n_heads": 8, "d_head": 40, "context_dim": 768},
                                "state": {k[len(prefix):]: ema[k] for k in spec if k.startswith(prefix)}}
    torch.save(fusers, tmp_path / "fusers.ckpt")
    torch.save({k[len("position_net."):]: ema[k] for k in spec if k.startswith("position_net.")},
               tmp_path / "position_net.ckpt")
    torch.save({str(i): {"scaleu_b": ema[f"scaleu_b_{i}"], "scaleu_s": ema[f"scaleu_s_{i}"]} for i in range(12)},
               tmp_path / "scaleu.ckpt")
    files = [tmp_path / n for n in ("fusers.ckpt", "position_net.ckpt", "scaleu.ckpt")]
    _assert_same(read_weights(files, spec=spec), ema, spec)
    with pytest.raises(InstDiffError, match=r"missing \(217\)"):
        read_weights([files[0], files[2]], spec=spec)
    with pytest.raises(InstDiffError, match="repeats"):
        read_weights([files[2], files[2]], spec=spec)


class _Evil:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("attack", ["os.system", "subprocess", "exec", "open", "eval"])
def test_malicious_pickles_refused(tmp_path, spec, attack):
    canary = tmp_path / "canary"
    payloads = {
        "os.system": (os.system, (f"touch {canary}",)),
        "subprocess": (subprocess.call, (["touch", str(canary)],)),
        "exec": (builtins.exec, (f"open({str(canary)!r}, 'w').close()",)),
        "open": (builtins.open, (str(canary), "w")),
        "eval": (builtins.eval, (f"__import__('os').system('touch {canary}')",)),
    }
    path = tmp_path / "evil.pth"
    _save_official(path, spec, extra={"opt": {"state": {0: _Evil(*payloads[attack])}}})
    with pytest.raises(InstDiffError, match="refusing to load .* it references ") as info:
        read_weights(path, spec=spec)
    assert not canary.exists()
    expected = {"os.system": "system", "subprocess": "subprocess.call", "exec": "builtins.exec",
                "open": "io.open", "eval": "builtins.eval"}[attack]
    assert expected in str(info.value)


def test_unknown_globals_are_never_imported(tmp_path, spec):
    canary = tmp_path / "imported"
    pkg = tmp_path / "mods"
    pkg.mkdir()
    (pkg / "trap_module.py").write_text(f"open({str(canary)!r}, 'w').close()\nclass Trap:\n    pass\n")
    sys.path.insert(0, str(pkg))
    try:
        import trap_module

        path = tmp_path / "trap.pth"
        _, ema = _save_official(path, spec, extra={"config": trap_module.Trap()})
    finally:
        sys.path.remove(str(pkg))
        sys.modules.pop("trap_module", None)
    canary.unlink()
    _assert_same(read_weights(path, spec=spec), ema, spec)
    assert not canary.exists()


def test_truncated_and_corrupted_pth(tmp_path, spec):
    path = tmp_path / "ok.pth"
    _save_official(path, spec)
    data = path.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(InstDiffError, match="truncated or corrupted"):
        read_weights(tmp_path / "cut.pth", spec=spec)
    # flip a byte inside the largest ema tensor's data: the zip CRC catches it when that record is read
    ema = _state(spec, 1)
    needle = ema["position_net.linears_list.3.0.weight"].numpy().tobytes()
    at = data.index(needle) + 4
    bad = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]
    (tmp_path / "flip.pth").write_bytes(bad)
    with pytest.raises(InstDiffError, match="corrupted"):
        read_weights(tmp_path / "flip.pth", spec=spec)


def test_legacy_and_unknown_formats(tmp_path, spec):
    torch.save({"ema": _state(spec, 1)}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(InstDiffError, match="legacy"):
        read_weights(tmp_path / "legacy.pth", spec=spec)
    (tmp_path / "junk.bin").write_bytes(b"hello world, not weights")
    with pytest.raises(InstDiffError, match="unknown file format"):
        read_weights(tmp_path / "junk.bin", spec=spec)


def _with_header(path, header_bytes, declared_len=None, data=b""):
    declared = len(header_bytes) if declared_len is None else declared_len
    path.write_bytes(struct.pack("<Q", declared) + header_bytes + data)
    return path


def test_lying_safetensors_refused(tmp_path, spec):
    ok = tmp_path / "ok.safetensors"
    save_file({k: v for k, v in _state(spec, 2).items()}, ok)
    raw = ok.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header, data = json.loads(raw[8:8 + n]), raw[8 + n:]
    cases = {
        "length": _with_header(tmp_path / "len.safetensors", raw[8:8 + n], declared_len=len(raw) * 2, data=data),
        "json": _with_header(tmp_path / "json.safetensors", b"{not json" + b" " * 20, data=data),
    }
    key = next(iter(k for k in header if k != "__metadata__"))
    header[key]["data_offsets"] = [0, len(data) + 4096]
    cases["offsets"] = _with_header(tmp_path / "off.safetensors", json.dumps(header).encode(), data=data)
    cases["truncated"] = tmp_path / "cut.safetensors"
    cases["truncated"].write_bytes(raw[: 8 + n + len(data) // 2])
    for name, path in cases.items():
        with pytest.raises(InstDiffError, match="safetensors"):
            read_weights(path, spec=spec)


def test_key_validation_lists_problems(tmp_path, spec):
    sd = _state(spec, 5)
    for key in ("scaleu_b_3", "position_net.in_conv.bias"):
        del sd[key]
    sd["position_net.extra_head.weight"] = torch.zeros(2)
    sd["input_blocks.1.1.transformer_blocks.0.fuser.linear.bias"] = torch.zeros(7)
    save_file(dict(sd), tmp_path / "bad.safetensors")
    with pytest.raises(InstDiffError) as info:
        read_weights(tmp_path / "bad.safetensors", spec=spec)
    msg = str(info.value)
    assert "missing (2): position_net.in_conv.bias, scaleu_b_3" in msg
    assert "unexpected (1): position_net.extra_head.weight" in msg
    assert "wrong shape (1): input_blocks.1.1.transformer_blocks.0.fuser.linear.bias (7,) (expected (3,))" in msg
    with pytest.raises(InstDiffError) as info:
        validate({}, spec, "empty.safetensors")
    assert "missing (513)" in str(info.value) and "... and 501 more" in str(info.value)
    assert "plain SD1.5" in str(info.value) and len(str(info.value)) < 2000
