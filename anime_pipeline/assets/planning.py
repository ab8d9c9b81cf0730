"""story_breakdown: each show's storyline turned into a proposed episode (a show file to review and merge)."""

import dagster as dg

from anime_pipeline.planning.story import propose
from anime_pipeline.resources import DirectorResource, ProjectResource, StorageResource
from anime_pipeline.storage import write_text

GROUP = "planning"
PROPOSAL = "story_breakdown.yaml"


def build() -> list[dg.AssetsDefinition]:
    @dg.asset(group_name=GROUP, code_version="1", kinds={"yaml"})
    def story_breakdown(context: dg.AssetExecutionContext, project: ProjectResource, storage: StorageResource,
                        director: DirectorResource) -> dg.MaterializeResult:
        """Writes `{storage}/{show}/proposals/story_breakdown.yaml`; never touches project_configs/."""
        loaded = project.load()
        written, paths = {}, {}
        for slug, config in loaded.shows.items():
            if not config.show.storyline.strip():
                context.log.info(f"{slug}: no storyline, nothing to plan")
                continue
            breakdown = propose(config, director.for_show(config))
            target = storage.paths.show(slug) / "proposals" / PROPOSAL
            write_text(target, f"# Proposed by anime-pipeline from show.storyline; review, then merge the new\n"
                               f"# episode into {loaded.files[slug].name}. Planner path per scene:\n"
                               + "".join(f"#   {line}\n" for line in breakdown.path) + breakdown.text)
            new = breakdown.config.episodes[-1]
            written[slug] = str(target)
            paths[slug] = list(breakdown.path)
            context.log.info(f"{slug}: proposed {len(new.scenes)} scenes, "
                             f"{sum(len(s.shots) for s in new.scenes)} shots → {target}")
        return dg.MaterializeResult(metadata={"proposals": dg.MetadataValue.json(written),
                                              "planner_path": dg.MetadataValue.json(paths)})

    return [story_breakdown]
