"""Restricted, budgeted unpickling of a checkpoint's data.pkl: nothing from the file runs, nothing outgrows its budget."""
# Two passes. The scan walks the opcodes (pickletools) without building anything: it charges each opcode an upper
# bound of the memory it can cost once unpickled (object, stack/memo slot, container entry), tracks the nesting
# depth of containers and the work of hashing tuple keys, and refuses the pickle past the budget (PICKLE_MEMORY_*
# bytes per pickle byte, limits.py) or on opcodes a torch.save file never uses. Only then the C unpickler builds the
# structure, with callables that charge the same budget for what they copy and never allocate by a number.
import _compat_pickle
import collections
import gc
import io
import pickle
import pickletools
from dataclasses import dataclass

import torch

from .errors import InstDiffError
from .limits import (MAX_PICKLE_DEPTH, PICKLE_HASH_WORK_PER_BYTE, PICKLE_MEMORY_BASE, PICKLE_MEMORY_PER_BYTE)

STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128,
}
# Globals from these modules would run code when called; a file naming any of them is refused outright.
_DANGEROUS_MODULES = {
    "os", "posix", "nt", "subprocess", "sys", "shutil", "socket", "importlib", "runpy", "pty", "commands",
    "webbrowser", "ctypes", "multiprocessing", "signal", "code", "codeop", "pdb", "bdb", "timeit", "pickle",
    "_pickle", "marshal", "io", "_io", "pathlib", "tempfile", "glob", "asyncio", "threading", "_thread",
    "platform", "popen2", "operator", "functools", "types", "_posixsubprocess",
    "urllib", "http", "requests", "ftplib", "smtplib", "telnetlib", "zipimport", "site", "ensurepip", "venv",
}
_SLOT = 64  # every opcode: its stack slot, memo slot and (once inserted) its container entry, over-allocation included
_OBJECT_COST = {  # what the object an opcode creates can cost beyond its slot (CPython 3.11, 64-bit)
    "EMPTY_SET": 224, "FROZENSET": 224, "EMPTY_DICT": 64, "DICT": 64, "EMPTY_LIST": 56, "LIST": 56,
    "EMPTY_TUPLE": 40, "TUPLE": 40, "TUPLE1": 48, "TUPLE2": 56, "TUPLE3": 64,
    "INT": 32, "BININT": 32, "BININT1": 32, "BININT2": 32, "FLOAT": 24, "BINFLOAT": 24,
    "GLOBAL": 2048, "STACK_GLOBAL": 2048,  # a placeholder class per distinct unknown name
    "REDUCE": 512, "NEWOBJ": 512, "NEWOBJ_EX": 512, "BUILD": 128, "BINPERSID": 512,  # tensor / storage records
}
_REFUSED_OPS = {"INST", "OBJ", "PERSID", "EXT1", "EXT2", "EXT4", "NEXT_BUFFER", "READONLY_BUFFER"}
_TO_MARK = {"TUPLE", "LIST", "DICT", "FROZENSET", "APPENDS", "SETITEMS", "ADDITEMS", "POP_MARK"}
_LEAF = (0, 1)  # (nesting depth, tuple nodes hashed) of a scalar
_COST = {op.name: _SLOT + _OBJECT_COST.get(op.name, 0) for op in pickletools.opcodes}
_SIZED = {"LONG", "LONG1", "LONG4", "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
          "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
_PUSH_LEAF = _SIZED | {"NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT", "BININT1", "BININT2", "FLOAT", "BINFLOAT",
                       "GLOBAL"}


def not_plain(source, reason: str) -> InstDiffError:
    """The refusal of a weights file that is not what torch.save / safetensors write."""
    return InstDiffError(
        f"refusing to load {source}: {reason}. It is not a plain weights file; get instancediffusion_sd15.pth "
        "from the official release (or convert a file you trust with python -m instdiff_model.convert)")


class Budget:
    """Estimated bytes and tuple-hash work the unpickled structure of one pickle may still cost."""

    def __init__(self, pickle_bytes: int, source):
        self.memory = PICKLE_MEMORY_PER_BYTE * pickle_bytes + PICKLE_MEMORY_BASE
        self.hashing = PICKLE_HASH_WORK_PER_BYTE * pickle_bytes + (1 << 20)
        self.source = source

    def charge(self, memory: int = 0, hashing: int = 0) -> None:
        self.memory -= memory
        self.hashing -= hashing
        if self.memory < 0:
            raise not_plain(self.source, "its pickle would unpack to more than "
                            f"{PICKLE_MEMORY_PER_BYTE} bytes per byte of pickle (+{PICKLE_MEMORY_BASE >> 20} MiB)")
        if self.hashing < 0:
            raise not_plain(self.source, "its pickle hashes nested tuples beyond the budget")


def _arg_cost(arg) -> int:
    if isinstance(arg, str):
        return 80 + 4 * len(arg)
    if isinstance(arg, (bytes, bytearray)):
        return 40 + len(arg)
    if isinstance(arg, int) and not isinstance(arg, bool):
        return 32 + arg.bit_length() // 8
    return 0


def scan(data: bytes, budget: Budget) -> None:
    """Refuse `data` unless unpickling it fits `budget` (memory, depth, hashing); builds nothing. A stack entry is
    (depth, tuple nodes) of a scalar or [depth, tuple nodes] of a container, shared with the memo like the object."""
    stack, marks, memo, ops = [], [], {}, 0

    def fail(reason):
        return not_plain(budget.source, f"its pickle {reason}")

    def take(k):
        if len(stack) < k or (marks and marks[-1] > len(stack) - k):
            raise fail("is malformed (stack underflow)")
        items = stack[len(stack) - k:]
        del stack[len(stack) - k:]
        return items

    def to_mark():
        if not marks:
            raise fail("is malformed (no mark)")
        items = stack[marks[-1]:]
        del stack[marks.pop():]
        return items

    def node(items, hashable):
        depth = 1 + max((d for d, _ in items), default=0)
        if depth > MAX_PICKLE_DEPTH:
            raise fail(f"nests containers deeper than {MAX_PICKLE_DEPTH}")
        return [depth, 1 + sum(n for _, n in items) if hashable else 1]

    def add(items, hashed):
        if not stack or type(stack[-1]) is tuple:
            raise fail("is malformed (nothing to add to)")
        budget.charge(hashing=sum(n for _, n in hashed))
        stack[-1][0] = max(stack[-1][0], node(items, False)[0])

    memory = budget.memory
    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            ops += 1
            memory -= _COST[name] + (_arg_cost(arg) if name in _SIZED else 0)
            if memory < 0:
                budget.charge(memory=budget.memory - memory)
            if name in _PUSH_LEAF:
                stack.append(_LEAF)
            elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET", "EMPTY_TUPLE"):
                stack.append([1, 1])
            elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                index = len(memo) if name == "MEMOIZE" else arg
                if not stack or index > ops:  # the C unpickler sizes its memo by the largest index
                    raise fail(f"stores memo entry {index} after {ops} opcodes")
                memo[index] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if arg not in memo:
                    raise fail(f"reads memo entry {arg}, which it never stored")
                stack.append(memo[arg])
            elif name in _REFUSED_OPS:
                raise fail(f"uses {name}, which torch.save never writes")
            elif name == "MARK":
                marks.append(len(stack))
            elif name in _TO_MARK:
                items = to_mark()
                if name in ("TUPLE", "LIST", "DICT", "FROZENSET"):
                    if name in ("DICT", "FROZENSET"):
                        budget.charge(hashing=sum(n for _, n in (items[::2] if name == "DICT" else items)))
                    stack.append(node(items, name in ("TUPLE", "FROZENSET")))
                elif name != "POP_MARK":
                    add(items, items[::2] if name == "SETITEMS" else items if name == "ADDITEMS" else [])
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                stack.append(node(take(int(name[-1])), True))
            elif name in ("APPEND", "SETITEM", "BUILD"):
                items = take(2 if name == "SETITEM" else 1)
                add(items, items[:1] if name == "SETITEM" else [])
            elif name == "DUP":
                stack.append(take(1)[0])
                stack.append(stack[-1])
            elif name == "POP":
                if marks and marks[-1] == len(stack):
                    marks.pop()
                else:
                    take(1)
            elif name not in ("PROTO", "FRAME", "STOP"):  # pushes a value made of what it takes
                taken = take(len(op.stack_before))
                depth = max((d for d, _ in taken), default=0)
                stack.append([depth, 1] if name in ("REDUCE", "NEWOBJ", "NEWOBJ_EX") else _LEAF)
        budget.memory = memory
    except InstDiffError:
        raise
    except Exception as e:  # unknown opcode, truncated argument, ...
        raise fail(f"is malformed ({e})") from None


@dataclass(frozen=True)
class StorageRef:
    key: str
    dtype: torch.dtype
    numel: int


@dataclass(frozen=True)
class LazyTensor:
    """A tensor described by the pickle whose bytes have not been read yet."""
    storage: StorageRef
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
    if not isinstance(storage, StorageRef):
        raise InstDiffError(f"tensor record without a storage ({type(storage).__name__})")
    if not all(isinstance(v, (tuple, list)) and len(v) <= 64 for v in (size, stride)):
        raise InstDiffError(f"tensor record with a malformed size/stride ({type(size).__name__})")
    return LazyTensor(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data, *unused):
    return data


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}
_BUILTINS = {"dict", "list", "set", "frozenset", "bytes", "bytearray", "str", "int", "float", "complex", "bool", "slice"}
_SCALARS = (int, float, complex, str, bytes, bool, type(None))
_TEXT = (str, bytes, bytearray)
_CONTAINERS = (list, tuple, dict, set, frozenset, str)


def _tuple_nodes(value, limit: int) -> int:
    """Tuples (and their elements) hashing `value` visits, counted up to `limit`."""
    count, todo = 0, [value]
    while todo and count <= limit:
        v = todo.pop()
        count += 1
        if type(v) is tuple:
            todo.extend(v)
    return count


class RestrictedUnpickler(pickle.Unpickler):
    """Admits tensors, storages, containers and primitives; anything else becomes an inert placeholder. Every
    callable it hands the pickle charges `budget` for what it copies and refuses size arguments."""

    def __init__(self, data: bytes, source, budget: Budget):
        super().__init__(io.BytesIO(data))
        self.source, self.budget = source, budget
        self.placeholders = {}
        self.callables = {name: self._bounded(name, ctor) for name, ctor in (
            ("dict", dict), ("list", list), ("set", set), ("frozenset", frozenset), ("OrderedDict", collections.OrderedDict),
            ("bytes", bytes), ("bytearray", bytearray), ("str", str), ("int", int), ("float", float),
            ("complex", complex), ("bool", bool), ("slice", slice))}

    def _bounded(self, name, ctor):
        text = name in ("bytes", "bytearray", "str")  # (text[, encoding[, errors]]): a copy of the text
        copies = text or name in ("dict", "list", "set", "frozenset", "OrderedDict")  # (container): a copy
        hashes = name in ("dict", "set", "frozenset", "OrderedDict")

        def call(*args):
            if text:
                ok = len(args) <= 3 and all(isinstance(a, _TEXT if i == 0 else str) for i, a in enumerate(args))
            elif copies:
                ok = len(args) <= 1 and all(isinstance(a, _CONTAINERS) for a in args)
            else:  # int, float, complex, bool, slice: scalars only (str() of a container would be a repr bomb)
                ok = len(args) <= 3 and all(isinstance(a, _SCALARS) for a in args)
            if not ok:
                raise not_plain(self.source, f"its pickle calls {name}({', '.join(type(a).__name__ for a in args)}), "
                                "which would allocate by a number or copy an unknown object")
            if args:
                self.budget.charge(memory=64 * len(args[0]) if copies else 0)
                if hashes:
                    items = args[0].keys() if isinstance(args[0], dict) else args[0]
                    self.budget.charge(hashing=sum(_tuple_nodes(v, self.budget.hashing) for v in items))
            return ctor(*args)

        call.__name__ = name
        return call

    def find_class(self, module, name):
        # protocol-2 pickles name Python 2 modules (__builtin__, commands, ...): map them as pickle itself does
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if (module, name) == ("collections", "OrderedDict") or (module == "builtins" and name in _BUILTINS):
            return self.callables[name]
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        if module.split(".")[0] in _DANGEROUS_MODULES or module == "builtins":
            raise InstDiffError(
                f"refusing to load {self.source}: it references {module}.{name}, which could run code. "
                "It is not a plain weights file; get instancediffusion_sd15.pth from the official release."
            )
        return self.placeholders.setdefault((module, name), type(name, (_Inert,), {"__module__": "inert." + module}))

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], torch.dtype)
                and isinstance(pid[2], (str, int)) and isinstance(pid[4], int)):
            raise InstDiffError(f"{self.source}: unsupported storage record ({type(pid).__name__} of "
                                f"{len(pid) if isinstance(pid, tuple) else '?'})")
        return StorageRef(str(pid[2]), pid[1], int(pid[4]))


def unpickle(data: bytes, source):
    """The structure pickled in `data` (LazyTensor leaves), scanned against its budget first."""
    budget = Budget(len(data), source)
    enabled = gc.isenabled()
    gc.disable()  # both passes create up to millions of containers: collections on the way would be quadratic
    try:
        scan(data, budget)
        return RestrictedUnpickler(data, source, budget).load()
    except InstDiffError:
        raise
    except Exception as e:  # e.g. NEWOBJ of a callable that is not a class, a call with wrong arguments
        raise not_plain(source, f"its pickle does not unpack ({type(e).__name__}: {str(e)[:200]})") from None
    finally:
        if enabled:
            gc.enable()
