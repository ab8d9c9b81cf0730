"""story_breakdown, one per show: a proposed episode written beside the storage, the show file untouched."""

import dagster as dg

from anime_pipeline.config import load_show
from anime_pipeline.definitions import build_definitions

STORY = dg.AssetKey(["lantern-post", "story_breakdown"])


def test_story_breakdown_writes_a_valid_proposal_and_leaves_the_config_alone(settings, instance):
    config_file = settings.configs_dir / "lantern_post.yaml"
    before = config_file.read_bytes()
    defs = dg.Definitions.merge(build_definitions(settings),
                                dg.Definitions(jobs=[dg.define_asset_job("plan", selection=[STORY])]))
    result = defs.resolve_job_def("plan").execute_in_process(instance=instance)
    assert result.success
    proposal = settings.storage_root / "lantern-post" / "proposals" / "story_breakdown.yaml"
    config = load_show(proposal)
    assert [e.slug for e in config.episodes] == ["ep01", "ep02"]
    assert config_file.read_bytes() == before
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["proposal"].value == str(proposal) and metadata["planner_path"].value
