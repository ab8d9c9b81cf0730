"""Declarative automation respects the gates: a partition whose upstream blocking checks failed is
not requested, however stale it is, and is requested once those checks pass."""

import dagster as dg

from anime_pipeline.definitions import build_definitions
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.dataset import DecisionLog, dataset_state
from anime_pipeline.sensors.sync import sync_instance

HOSHI = "lantern-post/hoshi"
LORA = dg.AssetKey("character_lora")


def evaluation(tick: dg.EvaluateAutomationConditionsResult, asset: dg.AssetKey):
    return next(result for result in tick.results if result.key == asset)


def partitions(result) -> set[str]:
    return set(result.true_subset.get_internal_subset_value().get_partition_keys())


def test_a_failed_upstream_gate_holds_automation_until_it_passes(settings, instance):
    sync_instance(instance, settings.configs_dir)
    defs = build_definitions(settings)
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert not tick.total_requested  # the first tick only records the state

    # hoshi is not human: its candidates wait for a person, so approved_dataset's
    # enough_approved gate fails and the run stops before character_lora.
    run = defs.resolve_job_def("character_job").execute_in_process(partition_key=HOSHI, instance=instance,
                                                                    raise_on_error=False)
    assert not run.success
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    eager, gates = evaluation(tick, LORA).child_results
    assert HOSHI in partitions(eager)  # stale and missing: plain eager would request it
    assert HOSHI not in partitions(gates) and not tick.get_requested_partitions(LORA)
    # the phase gate re-evaluates although mio's partitions were never made
    assert tick.get_num_requested(dg.AssetKey("phase1_stills")) == 1

    paths = StoragePaths(settings.storage_root)
    log = DecisionLog(paths.decisions_log(HOSHI))
    for candidate in dataset_state(paths.candidates(HOSHI), log).pending:
        log.record(candidate.id, "approve", "human:test")
    rerun = dg.materialize(list(defs.assets), selection=["approved_dataset"], partition_key=HOSHI,
                           instance=instance, resources=defs.resources)
    assert all(e.passed for e in rerun.get_asset_check_evaluations())
    tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
    assert tick.get_requested_partitions(LORA) == {HOSHI}


def test_the_automation_sensor_covers_every_asset_and_is_off_until_turned_on(settings):
    sensor = build_definitions(settings).resolve_sensor_def("production_automation")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
