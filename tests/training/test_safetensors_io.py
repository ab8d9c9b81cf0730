"""The safetensors header reader and the metadata re-stamp, against files the library itself writes."""

from __future__ import annotations

import dataclasses
import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from safetensors.torch import load_file as load_torch
from safetensors.torch import save_file as save_torch

from anime_pipeline.training import safetensors_io
from anime_pipeline.training.errors import LoraFileError, TrainingError
from anime_pipeline.training.safetensors_io import (
    read_header,
    verify_loadable,
    write_with_metadata,
)


def test_header_gives_every_key_dtype_and_shape(tmp_path: Path):
    path = tmp_path / "a.safetensors"
    save_file({"x.weight": np.zeros((3, 4), np.float16), "y": np.ones(5, np.float32)}, str(path), {"k": "v"})
    header = read_header(path)
    assert header.metadata == {"k": "v"}
    assert {k: (t.dtype, t.shape) for k, t in header.tensors.items()} == {"x.weight": ("F16", (3, 4)), "y": ("F32", (5,))}
    assert 8 + header.header_bytes + header.data_bytes == path.stat().st_size


def test_restamped_metadata_keeps_every_tensor_byte_even_bf16(tmp_path: Path):
    source, target = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    tensors = {"a.lora_down.weight": torch.randn(4, 8).to(torch.bfloat16), "a.alpha": torch.tensor(2.0)}
    save_torch(tensors, str(source), {"ss_network_dim": "4"})
    write_with_metadata(source, target, {"ss_network_dim": "4", "ap_trainer": "kohya"})
    loaded = load_torch(str(target))
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors) and loaded["a.lora_down.weight"].dtype == torch.bfloat16
    assert verify_loadable(target)[1] == {"ss_network_dim": "4", "ap_trainer": "kohya"}
    assert (8 + read_header(target).header_bytes) % 8 == 0  # data stays aligned


@pytest.mark.parametrize("content, reason", [
    (b"abc", "too short for a safetensors file"),
    (struct.pack("<Q", 10_000) + b"{}", "does not fit a 10-byte file"),
    (struct.pack("<Q", 4) + b"{no}", "the header is not JSON"),
    (struct.pack("<Q", 2) + b"[]", "the header is not a JSON object"),
    (struct.pack("<Q", 40) + json.dumps({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()[:40],
     "the header is not JSON"),
])
def test_malformed_files_are_named_errors(tmp_path: Path, content: bytes, reason: str):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(LoraFileError) as caught:
        read_header(path)
    assert reason in str(caught.value) and str(path) in str(caught.value)
    assert isinstance(caught.value, TrainingError)


@pytest.mark.parametrize("entry, reason", [
    ({"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}, "unknown dtype"),
    ({"dtype": "F32", "shape": [2], "data_offsets": [0, 80]}, "fall outside the 8 bytes"),
    ({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}, "do not hold a F32 tensor of shape [3]"),
    ({"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}, "is not a list of sizes"),
])
def test_inconsistent_tensor_entries_are_refused(tmp_path: Path, entry: dict, reason: str):
    header = json.dumps({"t": entry}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    with pytest.raises(LoraFileError, match=re.escape(reason)):
        read_header(path)


def test_a_restamp_that_fails_midway_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "in.safetensors"
    save_file({"t": np.zeros(4, np.float32)}, str(path))
    target = tmp_path / "out" / "x.safetensors"
    target.parent.mkdir()
    real = read_header(path)
    # the source shrinks between reading its header and copying its data
    monkeypatch.setattr(safetensors_io, "read_header", lambda _: dataclasses.replace(real, data_bytes=real.data_bytes + 64))
    with pytest.raises(LoraFileError, match="shrank"):
        write_with_metadata(path, target, {"a": "b"})
    assert list(target.parent.iterdir()) == []


def test_the_library_refusing_a_file_is_a_lora_file_error(tmp_path: Path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"not at all")
    with pytest.raises(LoraFileError, match="safetensors library cannot open it"):
        verify_loadable(path)
