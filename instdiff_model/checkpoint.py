"""Safe, lazy reading of InstanceDiffusion weights (official .pth, our safetensors, logtd split files)."""
import _compat_pickle
import builtins
import collections
import json
import pickle
import struct
import zipfile
from dataclasses import dataclass

import torch
from safetensors import safe_open

from .blocks import fuser_and_scaleu_spec, fuser_prefix
from .errors import InstDiffError

# The official loader (utils/checkpoint.py load_model_ckpt) loads ckpt['ema'] strictly, ckpt['model'] as fallback.
DEFAULT_WEIGHTS = "ema"
COMFY_PREFIX = "model.diffusion_model."
POSITION_NET_PREFIX = "position_net."

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128,
}
_SAFE_BUILTINS = {name: getattr(builtins, name) for name in (
    "dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "bool", "str", "bytes", "bytearray", "slice")}
# Globals from these modules would run code when called; a file naming any of them is refused outright.
_DANGEROUS_MODULES = {
    "os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "importlib", "runpy", "pty", "commands",
    "webbrowser", "ctypes", "multiprocessing", "signal", "code", "codeop", "pdb", "bdb", "timeit", "pickle",
    "_pickle", "marshal", "io", "_io", "pathlib", "tempfile", "glob", "asyncio", "threading", "_thread",
    "platform", "popen2", "operator", "functools", "types", "_posixsubprocess",
    "urllib", "http", "requests", "ftplib", "smtplib", "telnetlib", "zipimport", "site", "ensurepip", "venv",
}
_CHUNK = 16 << 20
_LIST_LIMIT = 12


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: torch.dtype
    numel: int


@dataclass(frozen=True)
class LazyTensor:
    """A tensor described by the pickle whose bytes have not been read yet."""
    storage: _StorageRef
    offset: int
    size: tuple
    stride: tuple

    @property
    def shape(self):
        return torch.Size(self.size)


class _Inert:
    """Stand-in for any pickled object we do not need (OmegaConf configs, numpy scalars, ...): never imported."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


def _rebuild_tensor(storage, offset, size, stride, *unused):
    if not isinstance(storage, _StorageRef):
        raise InstDiffError(f"tensor record without a storage ({type(storage).__name__})")
    return LazyTensor(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data, *unused):
    return data


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits tensors, storages, containers and primitives; anything else becomes an inert placeholder."""

    def __init__(self, file, source):
        super().__init__(file)
        self.source = source
        self.placeholders = {}

    def find_class(self, module, name):
        # protocol-2 pickles name Python 2 modules (__builtin__, commands, ...): map them as pickle itself does
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "builtins" and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if module.split(".")[0] in _DANGEROUS_MODULES or module == "builtins":
            raise InstDiffError(
                f"refusing to load {self.source}: it references {module}.{name}, which could run code. "
                "It is not a plain weights file; get instancediffusion_sd15.pth from the official release."
            )
        return self.placeholders.setdefault((module, name), type(name, (_Inert,), {"__module__": "inert." + module}))

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], torch.dtype)):
            raise InstDiffError(f"{self.source}: unsupported storage record {pid!r:.80}")
        return _StorageRef(str(pid[2]), pid[1], int(pid[4]))


class _TorchZip:
    """A torch zip checkpoint: the unpickled structure (LazyTensor leaves) and on-demand storage reads."""

    def __init__(self, path):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
            pickles = [n for n in self.zip.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise InstDiffError(f"{path}: not a torch checkpoint (no unique <name>/data.pkl in the zip)")
            self.prefix = pickles[0][: -len("data.pkl")]
            if self.prefix + "byteorder" in self.zip.namelist():
                if self.zip.read(self.prefix + "byteorder").strip() != b"little":
                    raise InstDiffError(f"{path}: big-endian checkpoints are not supported")
            with self.zip.open(pickles[0]) as f:
                self.root = _RestrictedUnpickler(f, path).load()
        except InstDiffError:
            raise
        except Exception as e:  # BadZipFile, truncated/corrupt pickle, placeholder misuse, ...
            raise InstDiffError(f"cannot read {path} as a torch checkpoint (truncated or corrupted?): {e}") from e

    def read_storage(self, ref: _StorageRef) -> torch.Tensor:
        name = f"{self.prefix}data/{ref.key}"
        try:
            info = self.zip.getinfo(name)
            nbytes = ref.numel * torch.empty((), dtype=ref.dtype).element_size()
            if info.file_size != nbytes:
                raise InstDiffError(f"{self.path}: storage {ref.key} holds {info.file_size} bytes, expected {nbytes}")
            out = torch.empty(nbytes, dtype=torch.uint8)
            view = memoryview(out.numpy())
            with self.zip.open(info) as f:
                pos = 0
                while pos < nbytes:
                    got = f.readinto(view[pos: pos + _CHUNK])
                    if not got:
                        raise InstDiffError(f"{self.path}: storage {ref.key} is truncated")
                    pos += got
                f.read(1)  # reach EOF so zipfile verifies the CRC
        except InstDiffError:
            raise
        except Exception as e:
            raise InstDiffError(f"cannot read tensor data {ref.key} of {self.path} (corrupted?): {e}") from e
        return out.view(ref.dtype) if nbytes else torch.empty(0, dtype=ref.dtype)

    def materialize(self, lazy: dict, dtype=None) -> dict:
        """{key: LazyTensor} -> {key: Tensor}, reading each needed storage once; views are copied out."""
        by_storage = collections.defaultdict(list)
        for key, t in lazy.items():
            by_storage[t.storage].append(key)
        out = {}
        for ref, keys in by_storage.items():
            flat = self.read_storage(ref)
            for key in keys:
                t = lazy[key]
                extent = t.offset + sum((s - 1) * st for s, st in zip(t.size, t.stride)) + 1
                if any(s < 0 for s in t.size) or (all(t.size) and extent > ref.numel):
                    raise InstDiffError(f"{self.path}: tensor {key} lies outside its storage")
                tensor = flat.as_strided(t.size, t.stride, t.offset)
                whole = len(keys) == 1 and tensor.numel() == ref.numel and tensor.is_contiguous()
                if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
                    tensor = tensor.to(dtype)
                elif not whole:
                    tensor = tensor.clone()  # do not keep a large shared storage alive
                out[key] = tensor
            del flat
        return out


def _is_lazy_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, LazyTensor) for v in obj.values())


def _official_name(key: str, position_net_keys) -> str:
    if key.startswith(COMFY_PREFIX):
        key = key[len(COMFY_PREFIX):]
    return POSITION_NET_PREFIX + key if key in position_net_keys else key


def _logtd_fusers(root, source) -> dict:
    groups = [("input_blocks", 6), ("middle_block", 1), ("output_blocks", 9)]
    out, index = {}, 0
    for group, count in groups:
        entries = list(root[group].values()) if isinstance(root.get(group), dict) else []
        if len(entries) != count:
            raise InstDiffError(f"{source}: logtd fusers file needs {count} '{group}' fusers, found {len(entries)}")
        for entry in entries:
            state = entry.get("state") if isinstance(entry, dict) else None
            if not _is_lazy_dict(state):
                raise InstDiffError(f"{source}: logtd fuser entry {index} has no 'state' tensors")
            out.update({fuser_prefix(index) + k: v for k, v in state.items()})
            index += 1
    return out


def _logtd_scaleu(root, source) -> dict:
    out = {}
    for i in range(12):
        entry = root.get(str(i), root.get(i))
        if not (isinstance(entry, dict) and {"scaleu_b", "scaleu_s"} <= set(entry)):
            raise InstDiffError(f"{source}: logtd scaleu file lacks entry {i} with scaleu_b / scaleu_s")
        out[f"scaleu_b_{i}"], out[f"scaleu_s_{i}"] = entry["scaleu_b"], entry["scaleu_s"]
    return out


def _select_state_dict(root, weights, source) -> dict:
    """The flat {key: LazyTensor} of an official / plain / logtd checkpoint structure."""
    if not isinstance(root, dict):
        raise InstDiffError(f"{source}: top level is {type(root).__name__}, not a dict of weights")
    if "ema" in root or "model" in root:
        if weights not in root:
            have = [k for k in ("ema", "model") if k in root]
            raise InstDiffError(f"{source} has no '{weights}' weights; it has {have}. Choose weights={have[0]!r}.")
        if not _is_lazy_dict(root[weights]):
            raise InstDiffError(f"{source}: ckpt['{weights}'] is not a state dict of tensors")
        return dict(root[weights])
    if "input_blocks" in root and "middle_block" in root:
        return _logtd_fusers(root, source)
    if "0" in root or 0 in root:
        return _logtd_scaleu(root, source)
    if "state_dict" in root and _is_lazy_dict(root["state_dict"]):
        return dict(root["state_dict"])
    if _is_lazy_dict(root):
        return dict(root)
    raise InstDiffError(f"{source}: no state dict found (top-level keys: {list(root)[:_LIST_LIMIT]})")


def _detect_format(path) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise InstDiffError(f"cannot open {path}: {e}") from e
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:2] == b"\x80\x02" and head[2:3] == b"\x8a":
        return "legacy"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    raise InstDiffError(f"{path}: unknown file format (expected a torch .pth/.ckpt zip or a .safetensors file)")


class _Safetensors:
    """A safetensors file: header checked up front, tensors read on demand (mmap)."""

    def __init__(self, path):
        self.path = path
        try:
            with open(path, "rb") as f:
                (header_len,) = struct.unpack("<Q", f.read(8))
                f.seek(0, 2)
                if header_len > f.tell() - 8:
                    raise InstDiffError(f"{path}: safetensors header length {header_len} exceeds the file size")
                f.seek(8)
                if not isinstance(json.loads(f.read(header_len)), dict):
                    raise InstDiffError(f"{path}: safetensors header is not a JSON object")
            self.file = safe_open(str(path), framework="pt")
            self.shapes = {k: torch.Size(self.file.get_slice(k).get_shape()) for k in self.file.keys()}
        except InstDiffError:
            raise
        except Exception as e:  # bad JSON, offsets beyond the file, truncated data, ...
            raise InstDiffError(f"{path}: invalid or corrupted safetensors file: {e}") from e

    def materialize(self, names: dict, dtype=None) -> dict:
        """{official key: stored key} -> {official key: Tensor}."""
        out = {}
        try:
            for name, key in names.items():
                t = self.file.get_tensor(key)
                out[name] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
        except Exception as e:
            raise InstDiffError(f"{self.path}: corrupted safetensors data: {e}") from e
        return out


def expected_spec() -> dict:
    """{official key: shape} of all 513 parameters InstanceDiffusion adds to SD1.5."""
    from .tokenizer import InstanceTokenizer

    with torch.device("meta"):
        position_net = InstanceTokenizer()
    spec = {POSITION_NET_PREFIX + k: tuple(v.shape) for k, v in position_net.state_dict().items()}
    spec.update(fuser_and_scaleu_spec())
    return spec


def _added_key(key: str) -> bool:
    return key.startswith(POSITION_NET_PREFIX) or key.startswith("scaleu_") or ".fuser." in key


def _listing(title, items) -> str:
    more = f", ... and {len(items) - _LIST_LIMIT} more" if len(items) > _LIST_LIMIT else ""
    return f"{title} ({len(items)}): " + ", ".join(items[:_LIST_LIMIT]) + more


def validate(sd: dict, spec: dict, source: str) -> None:
    """Raise InstDiffError listing missing, unexpected and wrong-shape keys of `sd` ({key: tensor or shape})."""
    missing = sorted(set(spec) - set(sd))
    unexpected = sorted(set(sd) - set(spec))
    shape = {k: tuple(v.shape) if hasattr(v, "shape") else tuple(v) for k, v in sd.items()}
    wrong = sorted(f"{k} {shape[k]} (expected {tuple(spec[k])})" for k in set(sd) & set(spec) if shape[k] != tuple(spec[k]))
    if missing or unexpected or wrong:
        parts = [_listing(t, items) for t, items in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if items]
        hint = " No InstanceDiffusion keys at all: is this a plain SD1.5 model?" if len(missing) == len(spec) else ""
        raise InstDiffError(f"{source} is not a complete InstanceDiffusion checkpoint: " + "; ".join(parts) + "." + hint)


def read_weights(paths, weights: str = DEFAULT_WEIGHTS, dtype=None, spec=None) -> dict:
    """Official-key {key: Tensor} of the 513 InstanceDiffusion parameters, strictly validated.

    `paths`: one file or a list (e.g. logtd's fusers.ckpt + position_net.ckpt + scaleu.ckpt). Accepted: the
    official instancediffusion_sd15.pth ('ema' by default, or 'model'), our converted safetensors (optionally
    with the 'model.diffusion_model.' prefix), logtd's split files. Keys outside position_net.* / *.fuser.* /
    scaleu_* (base UNet, optimizer state) are skipped unread. Shapes are validated against `spec` (default:
    expected_spec()) before any tensor data is read. `dtype` casts floating tensors while reading.
    """
    if weights not in ("ema", "model"):
        raise InstDiffError(f"weights must be 'ema' or 'model', not {weights!r}")
    spec = expected_spec() if spec is None else spec
    position_net_keys = {k[len(POSITION_NET_PREFIX):] for k in spec if k.startswith(POSITION_NET_PREFIX)}
    paths = [paths] if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__") else list(paths)
    parts, shapes = [], {}
    for path in paths:
        kind = _detect_format(path)
        if kind == "legacy":
            raise InstDiffError(
                f"{path} uses the legacy (pre-1.6) torch pickle format, which is not supported; convert it once "
                "with a trusted torch: torch.save(torch.load(p, weights_only=True), p2)"
            )
        if kind == "safetensors":
            source = _Safetensors(path)
            stored = source.shapes
        else:
            source = _TorchZip(path)
            stored = _select_state_dict(source.root, weights, path)
        wanted = {}
        for key, t in stored.items():
            name = _official_name(str(key), position_net_keys)
            if _added_key(name):
                wanted[name] = key if kind == "safetensors" else t
                shape = t if kind == "safetensors" else t.shape
                if name in shapes:
                    raise InstDiffError(f"{path} repeats key {name} from an earlier file")
                shapes[name] = torch.Size(shape)
        parts.append((source, wanted))
    validate(shapes, spec, ", ".join(str(p) for p in paths))
    merged = {}
    for source, wanted in parts:
        merged.update(source.materialize(wanted, dtype))
    return merged
