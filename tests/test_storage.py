import os
import stat

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
