"""Artifact storage: one folder per show under a storage root, atomic writes everywhere.

Readers never see a half-written file: every write goes to a temporary name in the
target's own folder (same filesystem) and is renamed into place.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextmanager
def atomic_path(target: Path | str, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` when the block succeeds.

    The temporary name keeps the target's extension (tools such as ffmpeg choose the
    container from it). On error the temporary file is removed and `target` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    ext = suffix if suffix is not None else "".join(target.suffixes[-1:])
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{ext}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes 0600 files; published media must be readable by e.g. the Jellyfin server.
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(target: Path | str, data: bytes) -> Path:
    target = Path(target)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return target


def write_text(target: Path | str, text: str) -> Path:
    return write_bytes(target, text.encode("utf-8"))


def write_json(target: Path | str, payload: Any) -> Path:
    return write_text(target, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def append_jsonl(target: Path | str, *records: dict[str, Any]) -> None:
    """Append records durably (fsync) — used for audit trails that must survive a crash.

    All records go out in one write under an exclusive lock, so concurrent writers (two reviewers,
    two processes) never interleave, and a process killed mid-request has written all of them or none.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(record, sort_keys=True, default=str) + "\n" for record in records).encode("utf-8")
    with open(target, "a+b", buffering=0) as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # released when the file is closed
        # After a crash mid-append the last line is torn; start on a fresh line so these records survive.
        if fh.seek(0, os.SEEK_END) > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                payload = b"\n" + payload
        view = memoryview(payload)
        while view:
            view = view[fh.write(view):]
        os.fsync(fh.fileno())


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """Read an append-only log; a torn last line (crash mid-append) is ignored, not fatal."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_json(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@contextmanager
def staged_dir(target: Path | str) -> Iterator[Path]:
    """Yield an empty folder beside `target`; when the block succeeds it replaces `target` whole,
    so a reader sees the old set of files or the new one, never a mix. On error nothing changes."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_UMASK)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.retired-", dir=target.parent))
            os.replace(target, retired / target.name)
            os.replace(staging, target)
            shutil.rmtree(retired)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
