"""Artifact storage: one folder per show under a storage root, atomic writes everywhere.

Readers never see a half-written file: every write goes to a temporary name in the
target's own folder (same filesystem) and is renamed into place. A writer killed mid-write
(SIGKILL, power loss) leaves its temporary file behind; its name is one that no output
listing matches (`.<name>.<host>-<pid>.<random>.partial`: hidden, and never ending in the
target's extension), `outputs` never lists it, and `clean_leftovers` removes it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)

TEMP_SUFFIX = ".partial"
LEFTOVER_GRACE_SECONDS = 6 * 3600
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
_TEMP = re.compile(r"\..+\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>[0-9]{1,7})\.[a-z0-9_]+\.partial")
_OLD_TEMP = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?")  # this module's names before .partial
_MAX_PID = 1 << 22  # Linux's largest pid_max


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` when the block succeeds.

    The temporary name does not end in the target's extension, so that no glob for outputs
    matches it: a tool that would guess the format from the name must be told it (PIL's
    `format=`, ffmpeg's `-f`, a file object for numpy). On error the temporary file is removed
    and `target` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name[:100]}.{_HOST}-{os.getpid()}."
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=target.parent)
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


def outputs(folder: Path | str, pattern: str = "*") -> list[Path]:
    """The files in `folder` matching `pattern`, sorted by name: never a writer's temporary file.

    Use it instead of `folder.glob(...)`: pathlib's `*` matches hidden names too, so a glob
    for frames would list a temporary file left by a killed writer. Hidden files are never
    outputs here."""
    return sorted(p for p in Path(folder).glob(pattern) if not p.name.startswith(".") and p.is_file())


def clean_leftovers(folder: Path | str, grace_seconds: float = LEFTOVER_GRACE_SECONDS,
                    recursive: bool = False) -> list[Path]:
    """Remove the temporary files of writers that will never finish them; return what was removed.

    A temporary file is stale when the process that made it (named in it) no longer runs on
    this host, or when nobody has written to it for `grace_seconds` (the only test for files
    made on another host sharing the storage, or by a process whose pid was reused since).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    walk = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    removed = []
    for root, _, names in walk:
        for name in names:
            path = Path(root, name)
            if _is_stale(path, grace_seconds):
                path.unlink(missing_ok=True)
                removed.append(path)
    return sorted(removed)


def _is_stale(path: Path, grace_seconds: float) -> bool:
    owned = _TEMP.fullmatch(path.name)
    if owned is None and not _OLD_TEMP.fullmatch(path.name):
        return False
    try:
        info = path.lstat()
    except FileNotFoundError:  # its writer finished meanwhile
        return False
    if not stat.S_ISREG(info.st_mode):
        return False
    if time.time() - info.st_mtime > grace_seconds:
        return True
    return owned is not None and owned["host"] == _HOST and not _runs(int(owned["pid"]))


def _runs(pid: int) -> bool:
    if not 0 < pid < _MAX_PID:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


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
