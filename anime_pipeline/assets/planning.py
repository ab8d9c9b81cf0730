"""story_breakdown, one per show: the storyline turned into a proposed episode (a show file to review and merge)."""


import dagster as dg

from anime_pipeline.assets.keys import ROLE_TAG, SHOW_TAG
from anime_pipeline.config.project import Project, dagster_name
from anime_pipeline.planning.story import propose
from anime_pipeline.storage import write_text

PROPOSAL = "story_breakdown.yaml"


def build_story_breakdowns(project: Project) -> list[dg.AssetsDefinition]:
    return [_story_breakdown(show) for show, config in project.shows.items() if config.show.storyline.strip()]


def _story_breakdown(show: str) -> dg.AssetsDefinition:
    @dg.asset(key=[show, "story_breakdown"], group_name=f"{dagster_name(show)}__planning", code_version="1",
              kinds={"yaml"}, tags={SHOW_TAG: show, ROLE_TAG: "planning"},
              required_resource_keys={"project", "storage", "director"})
    def _asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """Writes `{storage}/{show}/proposals/story_breakdown.yaml`; never touches project_configs/."""
        r = context.resources
        loaded = r.project.load()
        config = loaded.shows[show]
        breakdown = propose(config, r.director.for_show(config))
        target = r.storage.paths.show(show) / "proposals" / PROPOSAL
        write_text(target, f"# Proposed by anime-pipeline from show.storyline; review, then merge the new\n"
                           f"# episode into {loaded.files[show].name}. Planner path per scene:\n"
                           + "".join(f"#   {line}\n" for line in breakdown.path) + breakdown.text)
        new = breakdown.config.episodes[-1]
        context.log.info(f"{show}: proposed {len(new.scenes)} scenes, {sum(len(s.shots) for s in new.scenes)} shots "
                         f"→ {target}")
        return dg.MaterializeResult(metadata={"proposal": dg.MetadataValue.path(str(target)),
                                              "planner_path": dg.MetadataValue.json(list(breakdown.path))})

    return _asset
