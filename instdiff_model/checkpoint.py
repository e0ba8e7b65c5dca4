"""Safe, lazy reading of InstanceDiffusion weights (official .pth, our safetensors, logtd split files)."""
import collections
import json
import math
import os
import struct
import zipfile

import torch
from safetensors import safe_open

from .blocks import fuser_and_scaleu_spec, fuser_prefix
from .errors import InstDiffError
from .limits import MAX_PICKLE_BYTES, MAX_SAFETENSORS_HEADER, MAX_ZIP_DIRECTORY_BYTES, MAX_ZIP_ENTRIES
from .pickle_budget import LazyTensor, not_plain, unpickle

# The official loader (utils/checkpoint.py load_model_ckpt) loads ckpt['ema'] strictly, ckpt['model'] as fallback.
DEFAULT_WEIGHTS = "ema"
COMFY_PREFIX = "model.diffusion_model."
POSITION_NET_PREFIX = "position_net."

_CHUNK = 16 << 20
_LIST_LIMIT = 12


def _zip_directory(path) -> None:
    """Refuse a zip whose central directory holds more than MAX_ZIP_ENTRIES entries or MAX_ZIP_DIRECTORY_BYTES,
    counted from its end records before zipfile builds one object per entry."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        tail_at = max(0, size - (22 + 65535 + 20))
        f.seek(tail_at)
        tail = f.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return  # not a zip end record: zipfile reports the bad zip
        count, cd_size = struct.unpack_from("<HL", tail, at + 10)
        end = tail_at + at
        loc = tail[at - 20: at] if at >= 20 else b""
        if loc[:4] == b"PK\x06\x07":  # zip64: the counts live in the zip64 end record
            f.seek(struct.unpack_from("<Q", loc, 8)[0])
            record = f.read(56)
            if record[:4] == b"PK\x06\x06":
                count, cd_size = struct.unpack_from("<QQ", record, 32)
                end = f.tell() - 56
        if count > MAX_ZIP_ENTRIES or cd_size > MAX_ZIP_DIRECTORY_BYTES:
            raise not_plain(path, f"its zip directory lists {count:,} entries in {cd_size:,} bytes (the limit is "
                            f"{MAX_ZIP_ENTRIES:,} entries, {MAX_ZIP_DIRECTORY_BYTES >> 20} MiB)")
        f.seek(max(0, end - cd_size))
        directory, entries, pos = f.read(cd_size), 0, 0
    while directory[pos: pos + 4] == b"PK\x01\x02" and pos + 46 <= len(directory):  # as zipfile will walk it
        entries += 1
        pos += 46 + sum(struct.unpack_from("<3H", directory, pos + 28))
    if entries > MAX_ZIP_ENTRIES:
        raise not_plain(path, f"its zip directory holds more than {MAX_ZIP_ENTRIES:,} entries")


class _TorchZip:
    """A torch zip checkpoint: the unpickled structure (LazyTensor leaves) and on-demand storage reads."""

    def __init__(self, path):
        self.path = path
        try:
            _zip_directory(path)
            self.zip = zipfile.ZipFile(path)
            self.size = os.path.getsize(path)
            pickles = [n for n in self.zip.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise InstDiffError(f"{path}: not a torch checkpoint (no unique <name>/data.pkl in the zip)")
            self.prefix = pickles[0][: -len("data.pkl")]
            if self.prefix + "byteorder" in self.zip.namelist():
                with self.zip.open(self.prefix + "byteorder") as f:
                    if f.read(16).strip() != b"little":
                        raise InstDiffError(f"{path}: big-endian checkpoints are not supported")
            self.root = unpickle(self._read_pickle(pickles[0]), path)
        except InstDiffError:
            raise
        except Exception as e:  # BadZipFile, truncated/corrupt pickle, placeholder misuse, ...
            raise InstDiffError(f"cannot read {path} as a torch checkpoint (truncated or corrupted?): {e}") from e

    def _read_pickle(self, name) -> bytes:
        """data.pkl, refused once it declares or inflates to more than MAX_PICKLE_BYTES (or than it declares)."""
        info = self.zip.getinfo(name)
        if info.file_size > MAX_PICKLE_BYTES:
            raise not_plain(self.path, f"its {name} declares {info.file_size:,} bytes (the limit is "
                            f"{MAX_PICKLE_BYTES >> 20} MiB)")
        try:
            with self.zip.open(info) as f:
                data = f.read(info.file_size + 1)
            if len(data) != info.file_size:
                raise zipfile.BadZipFile(f"{len(data):,} bytes")
        except zipfile.BadZipFile as e:  # zipfile stops at the declared size and checks the CRC there
            raise not_plain(self.path, f"its {name} does not inflate to the {info.file_size:,} bytes it declares "
                            f"({e})") from None
        return data

    def _stored_whole(self, ref) -> bool:
        """The storage's entry holds exactly its bytes, uncompressed, inside the file (how torch.save stores it)."""
        try:
            info = self.zip.getinfo(f"{self.prefix}data/{ref.key}")
        except KeyError:
            return False
        nbytes = ref.numel * torch.empty((), dtype=ref.dtype).element_size()
        return (info.compress_type == zipfile.ZIP_STORED and info.file_size == nbytes
                and info.header_offset + nbytes <= self.size)

    def read_storage(self, ref, progress=None) -> torch.Tensor:
        name = f"{self.prefix}data/{ref.key}"
        try:
            info = self.zip.getinfo(name)
            nbytes = ref.numel * torch.empty((), dtype=ref.dtype).element_size()
            if info.file_size != nbytes:
                raise InstDiffError(f"{self.path}: storage {ref.key} holds {info.file_size} bytes, expected {nbytes}")
            if info.compress_type == zipfile.ZIP_STORED and info.header_offset + nbytes > self.size:
                raise not_plain(self.path, f"its storage {ref.key} claims {nbytes:,} bytes, beyond the end of the file")
            out = torch.empty(nbytes, dtype=torch.uint8)
            view = memoryview(out.numpy())
            with self.zip.open(info) as f:
                pos = 0
                while pos < nbytes:
                    got = f.readinto(view[pos: pos + _CHUNK])
                    if not got:
                        raise InstDiffError(f"{self.path}: storage {ref.key} is truncated")
                    pos += got
                    if progress is not None:
                        progress(got)
                f.read(1)  # reach EOF so zipfile verifies the CRC
        except InstDiffError:
            raise
        except Exception as e:
            raise InstDiffError(f"cannot read tensor data {ref.key} of {self.path} (corrupted?): {e}") from e
        return out.view(ref.dtype) if nbytes else torch.empty(0, dtype=ref.dtype)

    def nbytes(self, lazy: dict) -> int:
        """The bytes materialize(lazy) reads: each storage once."""
        return sum(r.numel * torch.empty((), dtype=r.dtype).element_size() for r in {t.storage for t in lazy.values()})

    def materialize(self, lazy: dict, dtype=None, progress=None) -> dict:
        """{key: LazyTensor} -> {key: Tensor}, reading each needed storage once; views are copied out. A storage
        larger than the validated tensors in it need is refused before anything is allocated, unless its bytes lie
        uncompressed in the file as torch.save writes them (a view of a larger tensor then costs at most the file)."""
        by_storage = collections.defaultdict(list)
        for key, t in lazy.items():
            by_storage[t.storage].append(key)
        for ref, keys in by_storage.items():
            need = 0
            for key in keys:
                t = lazy[key]
                extent = t.offset + sum((s - 1) * st for s, st in zip(t.size, t.stride)) + 1
                if any(s < 0 for s in t.size) or t.offset < 0 or (all(t.size) and extent > ref.numel):
                    raise InstDiffError(f"{self.path}: tensor {key} lies outside its storage")
                need += extent if all(t.size) else 0
            if ref.numel > need and not self._stored_whole(ref):
                raise not_plain(self.path, f"its storage {ref.key} claims {ref.numel:,} elements but "
                                f"{', '.join(keys[:3])} use{'s' if len(keys) == 1 else ''} {need:,}")
        out = {}
        for ref, keys in by_storage.items():
            flat = self.read_storage(ref, progress)
            for key in keys:
                t = lazy[key]
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


_SAFETENSORS_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
                      "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def _check_safetensors_entries(header: dict, data_bytes: int, path) -> None:
    """Each tensor's shape must fit the bytes its offsets give it, inside the file (before safetensors maps it)."""
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(shape, list) and len(shape) <= 64 and all(type(s) is int and s >= 0 for s in shape)
                and isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise not_plain(path, f"it is an invalid or corrupted safetensors file: header entry {str(key)[:80]!r} has "
                            "no valid shape/data_offsets")
        begin, end = offsets
        numel = math.prod(shape) if 0 not in shape and sum(s.bit_length() for s in shape) < 80 else 0 if 0 in shape \
            else data_bytes + 1
        width = _SAFETENSORS_BYTES.get(entry.get("dtype"), 1)
        if not 0 <= begin <= end <= data_bytes or numel * width > data_bytes or (
                entry.get("dtype") in _SAFETENSORS_BYTES and numel * width != end - begin):
            raise not_plain(path, f"it is an invalid or corrupted safetensors file (truncated?): its header gives "
                            f"{str(key)[:80]!r} shape {shape!s:.80} and bytes {begin:,}..{end:,} of {data_bytes:,}")


class _Safetensors:
    """A safetensors file: header checked up front, tensors read on demand (mmap)."""

    def __init__(self, path):
        self.path = path
        try:
            with open(path, "rb") as f:
                (header_len,) = struct.unpack("<Q", f.read(8))
                size = f.seek(0, 2)
                if header_len > size - 8:
                    raise InstDiffError(f"{path}: safetensors header length {header_len} exceeds the file size")
                if header_len > MAX_SAFETENSORS_HEADER:
                    raise not_plain(path, f"its safetensors header claims {header_len:,} bytes (the limit is "
                                    f"{MAX_SAFETENSORS_HEADER >> 20} MiB)")
                f.seek(8)
                header = json.loads(f.read(header_len))
                if not isinstance(header, dict):
                    raise InstDiffError(f"{path}: safetensors header is not a JSON object")
                _check_safetensors_entries(header, size - 8 - header_len, path)
            self.file = safe_open(str(path), framework="pt")
            self.shapes = {k: torch.Size(self.file.get_slice(k).get_shape()) for k in self.file.keys()}
        except InstDiffError:
            raise
        except Exception as e:  # bad JSON, offsets beyond the file, truncated data, ...
            raise InstDiffError(f"{path}: invalid or corrupted safetensors file: {e}") from e

    def nbytes(self, names: dict) -> int:
        sizes = {k: self.file.get_slice(k).get_dtype() for k in names.values()}
        return sum(self.shapes[k].numel() * _SAFETENSORS_BYTES.get(d, 1) for k, d in sizes.items())

    def materialize(self, names: dict, dtype=None, progress=None) -> dict:
        """{official key: stored key} -> {official key: Tensor}."""
        out = {}
        try:
            for name, key in names.items():
                t = self.file.get_tensor(key)
                out[name] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
                if progress is not None:
                    progress(t.numel() * t.element_size())
        except Exception as e:
            raise InstDiffError(f"{self.path}: corrupted safetensors data: {e}") from e
        return out


def expected_spec() -> dict:
    """{official key: shape} of all 513 parameters InstanceDiffusion adds to SD1.5."""
    from .position_net import InstanceTokenizer

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


def read_weights(paths, weights: str = DEFAULT_WEIGHTS, dtype=None, spec=None, progress=None) -> dict:
    """Official-key {key: Tensor} of the 513 InstanceDiffusion parameters, strictly validated.

    `paths`: one file or a list (e.g. logtd's fusers.ckpt + position_net.ckpt + scaleu.ckpt). Accepted: the
    official instancediffusion_sd15.pth ('ema' by default, or 'model'), our converted safetensors (optionally
    with the 'model.diffusion_model.' prefix), logtd's split files. Keys outside position_net.* / *.fuser.* /
    scaleu_* (base UNet, optimizer state) are skipped unread. Shapes are validated against `spec` (default:
    expected_spec()) before any tensor data is read. `dtype` casts floating tensors while reading. `progress(done,
    total)` is called as tensor bytes are read.
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
    merged, total, done = {}, sum(source.nbytes(wanted) for source, wanted in parts), [0]

    def step(nbytes):
        done[0] += nbytes
        progress(min(done[0], total), total)
    for source, wanted in parts:
        merged.update(source.materialize(wanted, dtype, step if progress is not None else None))
    return merged
