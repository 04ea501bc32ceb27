"""Read torch's legacy (pre-1.6, non-zip) checkpoint format without torch, tensors as numpy arrays.

`read_legacy_torch(data)` -> the saved object with every tensor as a numpy array. Only an allowlist of
globals is unpickled, so no code in a checkpoint runs while it is read. The speaker encoder reads
resemblyzer's `pretrained.pt` with it (`scanner.analysis.voices.encoder`).
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass

import numpy as np

_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
"""The number a legacy torch file starts with (its first pickle)."""


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype
    size: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, offset, shape, stride, *_rest):
    return _TensorRef(storage, int(offset), tuple(int(s) for s in shape), tuple(int(s) for s in stride))


def _rebuild_parameter(data, *_rest):
    return data


class _LegacyUnpickler(pickle.Unpickler):
    """Unpickles a legacy torch checkpoint with an allowlist: tensors become `_TensorRef`s, nothing runs."""

    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a weights file")

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, number of elements, view metadata)
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        if pid[5:] and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        return _StorageRef(str(pid[2]), np.dtype(pid[1]), int(pid[4]))


def read_legacy_torch(data: bytes) -> dict:
    """The object saved by torch's legacy (pre-1.6, non-zip) `torch.save`, tensors as numpy arrays.

    The format: four pickles (a magic number, the protocol version, system information, then the
    object, whose tensors refer to storages by persistent id), a pickled list of storage keys, then
    each storage in that order as an 8-byte little-endian element count followed by its raw
    little-endian values. Only an allowlist of globals is accepted (no code runs while reading).
    Raises ValueError on anything else.
    """
    f = io.BytesIO(data)
    try:
        magic = pickle.load(f)
        if magic != LEGACY_MAGIC:
            raise ValueError("not a legacy torch file (bad magic number)")
        pickle.load(f)  # protocol version
        pickle.load(f)  # system info (endianness, type sizes)
        obj = _LegacyUnpickler(f).load()
        keys = pickle.load(f)
    except (pickle.UnpicklingError, EOFError) as exc:
        raise ValueError(f"not a readable legacy torch file: {exc}") from exc

    refs: dict[str, _StorageRef] = {}

    def collect(o):
        if isinstance(o, _TensorRef):
            refs[o.storage.key] = o.storage
        elif isinstance(o, dict):
            for v in o.values():
                collect(v)
        elif isinstance(o, (list, tuple)):
            for v in o:
                collect(v)

    collect(obj)
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8))
        ref = refs.get(key)
        if ref is None:
            raise ValueError(f"storage {key} is not referenced by any tensor")
        raw = f.read(count * ref.dtype.itemsize)
        if len(raw) != count * ref.dtype.itemsize:
            raise ValueError("weights file is truncated")
        storages[key] = np.frombuffer(raw, dtype=ref.dtype)

    def resolve(o):
        if isinstance(o, _TensorRef):
            base = storages[o.storage.key]
            item = base.itemsize
            view = np.lib.stride_tricks.as_strided(base[o.offset:], shape=o.shape,
                                                   strides=tuple(s * item for s in o.stride))
            return np.array(view)  # a contiguous copy, writable
        if isinstance(o, dict):
            return type(o)((k, resolve(v)) for k, v in o.items())
        if isinstance(o, list):
            return [resolve(v) for v in o]
        if isinstance(o, tuple):
            return tuple(resolve(v) for v in o)
        return o

    return resolve(obj)
