"""Declarative automation respects the gates: an asset whose upstream blocking check failed is not
requested, however stale it is, and is requested once that check passes."""

from __future__ import annotations

import dagster as dg

from anime_pipeline.assets.keys import asset_key
from anime_pipeline.definitions import build_definitions, characters_job_name
from anime_pipeline.paths import StoragePaths
from anime_pipeline.production.candidates import DecisionLog, dataset_state

HOSHI = "lantern-post/hoshi"
LORA = asset_key("character_lora", HOSHI)
DATASET = asset_key("approved_dataset", HOSHI)


def _evaluation(tick: dg.EvaluateAutomationConditionsResult, key: dg.AssetKey):
    return next(result for result in tick.results if result.key == key)


def test_a_failed_upstream_gate_holds_automation_until_it_passes(world):
    defs = build_definitions(world.settings())
    job = defs.resolve_job_def(characters_job_name("lantern-post"))
    with world.instance() as instance:
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert not tick.total_requested  # the first tick only records the state

        # hoshi is not human: its candidates wait for a person, so approved_dataset's
        # enough_approved gate fails and the run stops before character_lora.
        run = job.execute_in_process(instance=instance, raise_on_error=False, asset_selection=[
            asset_key(a, HOSHI) for a in ("character_reference", "character_embedding", "approved_dataset")])
        assert not run.success
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        eager, gates = _evaluation(tick, LORA).child_results
        assert eager.true_subset.size == 1  # missing, upstream updated: plain eager would request it
        assert gates.true_subset.size == 0 and tick.get_num_requested(LORA) == 0

        paths = StoragePaths(world.storage)
        log = DecisionLog(paths.decisions_log(HOSHI))
        for candidate in dataset_state(paths.candidates(HOSHI), log).pending:
            log.record(candidate.id, "approve", "human:test")
        rerun = job.execute_in_process(instance=instance, asset_selection=[DATASET])
        assert all(e.passed for e in rerun.get_asset_check_evaluations())
        tick = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=tick.cursor)
        assert tick.get_num_requested(LORA) == 1


def test_the_automation_sensor_covers_every_asset_and_is_off_until_turned_on(settings):
    sensor = build_definitions(settings).resolve_sensor_def("production_automation")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
