"""Read a *legacy* (non-zip) PyTorch checkpoint without torch.

Legacy layout (torch.save with _use_new_zipfile_serialization=False):
  pickle(magic number) pickle(protocol) pickle(sys info)
  pickle(obj)            -- tensors appear as persistent ids ('storage', cls, key, location, numel)
  pickle(list of storage keys)
  for each key, in that order: int64 little-endian element count + raw bytes
"""
from __future__ import annotations

import collections
import io
import pickle
import struct

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _LazyTensor:
    """Placeholder produced while unpickling; materialised once the storages are read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialise(self, buffers: dict) -> np.ndarray:
        key = self.storage[0]
        base = buffers[key]
        if not self.size:
            return base[self.offset].copy()
        item = base.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=[s * item for s in self.stride]
        )
        return np.ascontiguousarray(view).copy()


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *rest):
    return _LazyTensor(storage, storage_offset, size, stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, storages: dict):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        kind, storage_type, key, location, numel = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        self.storages.setdefault(key, (storage_type, numel))
        return (key, storage_type)


def load_legacy_state_dict(path: str) -> "collections.OrderedDict[str, np.ndarray]":
    with open(path, "rb") as fh:
        data = fh.read()
    f = io.BytesIO(data)
    magic = pickle.load(f)
    if magic != LEGACY_MAGIC:
        raise ValueError(f"{path}: not a legacy torch file (magic {magic!r})")
    protocol = pickle.load(f)
    if protocol != 1001:
        raise ValueError(f"{path}: unexpected protocol version {protocol}")
    pickle.load(f)  # sys info (endianness, type sizes): not needed
    storages: dict = {}
    obj = _Unpickler(f, storages).load()
    keys = pickle.load(f)
    buffers = {}
    for key in keys:
        (numel,) = struct.unpack("<q", f.read(8))
        storage_type, expected = storages[key]
        nbytes = numel * storage_type.dtype.itemsize
        if numel != expected:
            raise ValueError(f"storage {key}: {numel} elements, pickle said {expected}")
        buffers[key] = np.frombuffer(f.read(nbytes), dtype=storage_type.dtype.newbyteorder("<"))
    if f.read(1):
        raise ValueError(f"{path}: trailing bytes after the last storage")
    out = collections.OrderedDict()
    for name, value in obj.items():
        out[name] = value.materialise(buffers) if isinstance(value, _LazyTensor) else value
    return out
