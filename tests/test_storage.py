import json
import multiprocessing
import os
import stat
import threading

import pytest

from anime_pipeline.storage import append_jsonl, atomic_path, read_jsonl, write_text


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
