"""The factory's run config: `force` for every generated asset, plus a step's own options (approved_dataset's
`batches`, which the replenishment sensor asks for), validated when a run starts."""

from __future__ import annotations

from anime_pipeline.assets.factory import StepConfig, config_type
from anime_pipeline.assets.keys import asset_key
from anime_pipeline.definitions import build_definitions, characters_job_name
from anime_pipeline.production.approved_dataset import ApprovedDataset
from anime_pipeline.production.character_reference import CharacterReference

MIO = "lantern-post/mio"


def test_a_step_s_options_join_force_in_its_assets_run_config():
    assert config_type(CharacterReference()) is StepConfig
    dataset = config_type(ApprovedDataset())
    assert set(dataset.model_fields) == {"force", "batches"} and dataset is config_type(ApprovedDataset())
    assert dataset(batches=2).batches == 2 and dataset().batches is None


def test_an_option_out_of_range_fails_the_run_naming_it(characters):
    defs = build_definitions(characters.settings())
    key = asset_key("approved_dataset", MIO)
    with characters.instance() as instance:
        result = defs.resolve_job_def(characters_job_name("lantern-post")).execute_in_process(
            instance=instance, asset_selection=[key], raise_on_error=False,
            run_config={"ops": {key.to_python_identifier(): {"config": {"batches": 9}}}})
    assert not result.success
    message = next(e.step_failure_data.error.message for e in result.all_events if e.is_step_failure)
    assert "batches" in message and "less than or equal to 4" in message
