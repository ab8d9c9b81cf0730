"""The safetensors container, read and re-stamped without loading a tensor.

A file is an 8-byte little-endian header length N, N bytes of JSON ({"__metadata__": {str: str},
name: {"dtype", "shape", "data_offsets": [begin, end]}}), then the tensor bytes; offsets are
relative to the end of the header. Reading only the header gives every key, dtype and shape of a
multi-GB checkpoint in milliseconds, and rewriting only the header changes `__metadata__` of a
LoRA in any dtype (bf16 included, which numpy cannot hold) while the tensor bytes are copied as
they are. The `safetensors` library itself is used to prove a finished file loads.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError, safe_open

from anime_pipeline.storage import atomic_path
from anime_pipeline.training.errors import LoraFileError

MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit
_COPY_CHUNK = 1 << 22
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8}


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    offsets: tuple[int, int]


@dataclass(frozen=True)
class SafetensorsHeader:
    path: Path
    metadata: dict[str, str]
    tensors: dict[str, TensorInfo]
    header_bytes: int  # N: the tensor data starts at 8 + N
    data_bytes: int


def read_header(path: Path | str) -> SafetensorsHeader:
    """Every tensor's dtype, shape and offsets plus `__metadata__`, checked against the file size;
    a LoraFileError naming the file and what is wrong otherwise."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise LoraFileError(path, f"{size} bytes is too short for a safetensors file")
            (length,) = struct.unpack("<Q", prefix)
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise LoraFileError(path, f"header length {length} does not fit a {size}-byte file "
                                          "(not a safetensors file?)")
            raw = handle.read(length)
    except OSError as exc:
        raise LoraFileError(path, f"cannot read it: {exc}") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise LoraFileError(path, f"the header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise LoraFileError(path, "the header is not a JSON object")
    data_bytes = size - 8 - length
    metadata = _metadata(path, header.pop("__metadata__", None) or {})
    tensors = {str(name): _tensor(path, str(name), entry, data_bytes) for name, entry in header.items()}
    return SafetensorsHeader(path, metadata, tensors, length, data_bytes)


def _metadata(path: Path, value: object) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise LoraFileError(path, "__metadata__ must map strings to strings")
    return dict(value)


def _tensor(path: Path, name: str, entry: object, data_bytes: int) -> TensorInfo:
    if not isinstance(entry, dict):
        raise LoraFileError(path, f"tensor {name!r}: the entry is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise LoraFileError(path, f"tensor {name!r}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise LoraFileError(path, f"tensor {name!r}: shape {shape!r} is not a list of sizes")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_bytes):
        raise LoraFileError(path, f"tensor {name!r}: data_offsets {offsets!r} fall outside the "
                                  f"{data_bytes} bytes of tensor data")
    if offsets[1] - offsets[0] != math.prod(shape) * DTYPE_BYTES[dtype]:
        raise LoraFileError(path, f"tensor {name!r}: {offsets[1] - offsets[0]} bytes do not hold a "
                                  f"{dtype} tensor of shape {shape}")
    return TensorInfo(dtype, tuple(shape), (offsets[0], offsets[1]))


def write_with_metadata(source: Path | str, target: Path | str, metadata: Mapping[str, str],
                        header: SafetensorsHeader | None = None) -> Path:
    """Copy `source` to `target` (atomically) with `__metadata__` replaced by `metadata`; the
    tensor bytes are copied unchanged. `header`: source's, when the caller has read it already."""
    header = header if header is not None else read_header(source)
    entries: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    entries.update({name: {"dtype": info.dtype, "shape": list(info.shape), "data_offsets": list(info.offsets)}
                    for name, info in header.tensors.items()})
    encoded = json.dumps(entries, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # the data stays 8-byte aligned, as the library writes it
    with atomic_path(target) as tmp, open(header.path, "rb") as src, open(tmp, "wb") as out:
        out.write(struct.pack("<Q", len(encoded)) + encoded)
        src.seek(8 + header.header_bytes)
        remaining = header.data_bytes
        while remaining:
            chunk = src.read(min(_COPY_CHUNK, remaining))
            if not chunk:
                raise LoraFileError(header.path, "the file shrank while it was being copied")
            out.write(chunk)
            remaining -= len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return Path(target)


def verify_loadable(path: Path | str) -> tuple[list[str], dict[str, str]]:
    """Open the file with the safetensors library (the parser every trainer and ComfyUI use) and
    return its keys and metadata; a LoraFileError when the library refuses it."""
    try:
        with safe_open(str(path), framework="np") as handle:
            return list(handle.keys()), dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise LoraFileError(Path(path), f"the safetensors library cannot open it: {exc}") from exc
