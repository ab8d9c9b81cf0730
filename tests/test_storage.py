import json
import multiprocessing
import os
import select
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from anime_pipeline.storage import (
    LEFTOVER_GRACE_SECONDS,
    TEMP_SUFFIX,
    append_jsonl,
    atomic_path,
    clean_leftovers,
    outputs,
    read_jsonl,
    write_text,
)


def test_atomic_write_replaces_whole_file_and_is_world_readable(tmp_path):
    target = tmp_path / "a" / "file.txt"
    write_text(target, "one")
    write_text(target, "two")
    assert target.read_text() == "two"
    assert stat.S_IMODE(target.stat().st_mode) & 0o044 == 0o044
    assert os.listdir(target.parent) == ["file.txt"]


def test_failed_write_leaves_target_untouched_and_no_temp(tmp_path):
    target = tmp_path / "file.txt"
    write_text(target, "kept")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "kept"
    assert os.listdir(tmp_path) == ["file.txt"]


def test_torn_last_line_does_not_swallow_the_next_record(tmp_path):
    log = tmp_path / "decisions.jsonl"
    append_jsonl(log, {"n": 1})
    with open(log, "a") as fh:
        fh.write('{"n": 2, "torn')
    append_jsonl(log, {"n": 3})
    assert read_jsonl(log) == [{"n": 1}, {"n": 3}]


def _append_groups(log, writer: str, groups: int) -> None:
    """Append `groups` groups of five records, each group in one call (a bulk decision)."""
    for group in range(groups):
        append_jsonl(log, *({"writer": writer, "group": group, "item": i, "pad": "x" * 2000} for i in range(5)))


def _process_writer(log, name: str, groups: int) -> None:
    threads = [threading.Thread(target=_append_groups, args=(log, f"{name}-t{t}", groups)) for t in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_concurrent_writers_never_interleave_or_lose_a_record(tmp_path):
    log, groups = tmp_path / "decisions.jsonl", 60
    processes = [multiprocessing.get_context("fork").Process(target=_process_writer, args=(log, f"p{p}", groups))
                 for p in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line whole
    assert len(records) == 2 * 2 * groups * 5
    for start in range(0, len(records), 5):  # each group's five records together, in order
        group = records[start:start + 5]
        assert [r["item"] for r in group] == list(range(5))
        assert len({(r["writer"], r["group"]) for r in group}) == 1
    assert len({(r["writer"], r["group"]) for r in records}) == 4 * groups
_WRITER = """
import sys, time
from anime_pipeline.storage import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a frame")
    print(tmp, flush=True)
    time.sleep(60)
"""


def _killed_mid_write(target) -> Path:
    """The temp file a writer leaves when it is SIGKILLed inside atomic_path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        ready, _, _ = select.select([writer.stdout], [], [], 60)
        assert ready, "the writer never reached its write"
        tmp = Path(writer.stdout.readline().strip())
    finally:
        writer.kill()
        writer.wait()
    return tmp


def test_a_killed_writer_leaves_a_temp_no_output_glob_matches_and_cleaning_removes_it(tmp_path):
    frames = tmp_path / "frames"
    tmp = _killed_mid_write(frames / "0000.png")
    assert tmp.exists() and tmp.parent == frames
    assert list(frames.glob("*.png")) == [] and list(frames.glob("*.*")) == [tmp]
    assert tmp.name.startswith(".0000.png.") and tmp.name.endswith(TEMP_SUFFIX)
    assert outputs(frames, "*.png") == [] and outputs(frames) == []
    assert clean_leftovers(frames) == [tmp]  # its writer is dead
    assert list(frames.iterdir()) == []


def test_cleaning_keeps_live_and_recent_temps_and_removes_old_ones(tmp_path):
    foreign = tmp_path / ".clip.mp4.otherhost-4242.abcd1234.partial"
    legacy = tmp_path / ".clip.x1y2z3a4.tmp.mp4"
    foreign.write_bytes(b"")
    legacy.write_bytes(b"")
    (tmp_path / "clip.mp4").write_bytes(b"done")
    with atomic_path(tmp_path / "frame.png") as mine:
        mine.write_bytes(b"in progress")
        assert clean_leftovers(tmp_path) == []  # this process runs; the others may still be written to
        old = time.time() - LEFTOVER_GRACE_SECONDS - 60
        for path in (foreign, legacy):
            os.utime(path, (old, old))
        assert clean_leftovers(tmp_path) == [foreign, legacy]
        assert mine.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "frame.png"]


def test_cleaning_can_walk_a_whole_storage_tree(tmp_path):
    tmps = [_killed_mid_write(tmp_path / "show" / "shots" / f"sh0{i}" / "frames" / "0001.png") for i in range(2)]
    assert clean_leftovers(tmp_path) == []
    assert clean_leftovers(tmp_path, recursive=True) == sorted(tmps)
    assert clean_leftovers(tmp_path / "missing") == []


def test_outputs_lists_files_by_name_never_hidden_ones_or_folders(tmp_path):
    for name in ("b.png", "a.png", ".a.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "c.png").mkdir()
    assert outputs(tmp_path, "*.png") == [tmp_path / "a.png", tmp_path / "b.png"]
    assert outputs(tmp_path) == [tmp_path / "a.png", tmp_path / "b.png", tmp_path / "notes.txt"]
