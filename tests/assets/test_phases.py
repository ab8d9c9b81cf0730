from anime_pipeline.definitions import build_definitions
from anime_pipeline.sensors.sync import sync_instance
from conftest import add_lenient_show


def test_shots_wait_for_phase_one_and_the_gate_names_what_blocks_it(settings, instance):
    sync_instance(instance, settings.configs_dir)
    defs = build_definitions(settings)
    # No character has passed its gates yet: Phase 1 has nothing evaluated and stays closed.
    phase1 = defs.resolve_job_def("phase1_stills_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not phase1.success
    (evaluation,) = phase1.get_asset_check_evaluations()
    assert evaluation.check_name == "opens_next_phase" and not evaluation.passed

    shot = defs.resolve_job_def("shot_job").execute_in_process(
        partition_key="lantern-post/ep01/sc01/sh01", instance=instance, raise_on_error=False)
    assert not shot.success
    message = next(e for e in shot.all_events if e.is_step_failure).step_failure_data.error.message
    assert "Phase 1 — stills is closed" in message and "materialize phase1_stills" in message

    # mio passes, hoshi waits for a human: 1 of 2 evaluated characters pass, 50 % < 80 %.
    job = defs.resolve_job_def("character_job")
    assert job.execute_in_process(partition_key="lantern-post/mio", instance=instance).success
    assert not job.execute_in_process(partition_key="lantern-post/hoshi", instance=instance,
                                      raise_on_error=False).success
    phase1 = defs.resolve_job_def("phase1_stills_job").execute_in_process(instance=instance, raise_on_error=False)
    metadata = phase1.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["pass_rate"].value == 0.5 and metadata["blocking"].value == ["lantern-post/hoshi"]
    assert not phase1.success


def test_each_show_has_its_own_phase_gate(settings, instance):
    # A second show that accepts half its characters: after its characters run, its Phase 1 is
    # open (1 of 2 pass, 50 % ≥ 50 %) while the sample show, never evaluated, stays closed; its
    # shots wait, the second show's run.
    add_lenient_show(settings.configs_dir)
    sync_instance(instance, settings.configs_dir)
    defs = build_definitions(settings)
    job = defs.resolve_job_def("character_job")
    assert job.execute_in_process(partition_key="second-show/mio", instance=instance).success
    job.execute_in_process(partition_key="second-show/hoshi", instance=instance, raise_on_error=False)

    phase1 = defs.resolve_job_def("phase1_stills_job").execute_in_process(instance=instance, raise_on_error=False)
    shows = phase1.get_asset_materialization_events()[0].materialization.metadata["shows"].value
    assert shows["second-show"]["open"] and shows["second-show"]["pass_rate"] == 0.5
    assert not shows["lantern-post"]["open"] and shows["lantern-post"]["not_evaluated"] == 2
    assert phase1.success  # a show not yet started does not hold the others' check back
    (evaluation,) = phase1.get_asset_check_evaluations()
    assert evaluation.metadata["value"].value == 0.5 and evaluation.metadata["threshold"].value == 0.5

    shot_job = defs.resolve_job_def("shot_job")
    closed = shot_job.execute_in_process(partition_key="lantern-post/ep01/sc01/sh01", instance=instance,
                                         raise_on_error=False)
    message = next(e for e in closed.all_events if e.is_step_failure).step_failure_data.error.message
    assert "Phase 1 — stills is closed (none of 2 partitions evaluated) for lantern-post" in message
    opened = shot_job.execute_in_process(partition_key="second-show/ep01/sc01/sh02", instance=instance,
                                         raise_on_error=False)
    assert opened.get_asset_materialization_events()  # the open show's shot rendered
