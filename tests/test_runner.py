"""The runner goes on past a phase gate that another show failed, when the gate is open for its own shows."""

from anime_pipeline.definitions import build_definitions
from anime_pipeline.paths import StoragePaths
from anime_pipeline.runner import Runner
from anime_pipeline.sensors.sync import sync_instance
from tests.worlds import add_lenient_show


def test_a_phase_failed_by_another_show_does_not_stop_this_ones_plan(settings, instance):
    add_lenient_show(settings.configs_dir)
    sync_instance(instance, settings.configs_dir)
    lines: list[str] = []
    runner = Runner(build_definitions(settings), instance, StoragePaths(settings.storage_root), lines.append)
    for show in ("lantern-post", "second-show"):  # mio passes, hoshi waits for a human: 50 % each
        for character in ("mio", "hoshi"):
            runner.run("character_job", f"{show}/{character}", 5)

    gate = runner.run("phase1_stills_job", None, 5)
    assert not gate.success  # lantern-post was evaluated and is closed (50 % < 80 %)
    assert runner.phase_open_for("phase1_stills_job", ["second-show"])
    assert "Phase 1 — stills is open for second-show" in lines[-1]
    assert not runner.phase_open_for("phase1_stills_job", ["lantern-post"])
