import dagster as dg
import yaml

from anime_pipeline.resources import ProjectResource
from anime_pipeline.sensors.sync import project_sync, sync_instance


def _tick(instance, configs_dir):
    context = dg.build_sensor_context(instance=instance, resources={"project": ProjectResource(configs_dir=str(configs_dir))})
    return project_sync(context)


def _edit(configs_dir, change):
    path = configs_dir / "lantern_post.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_sensor_adds_partitions_and_spec_versions(instance, configs_dir):
    result = _tick(instance, configs_dir)
    assert isinstance(result, dg.SensorResult)
    added = {r.partitions_def_name: set(r.partition_keys) for r in result.dynamic_partitions_requests}
    assert added["characters"] == {"lantern-post/mio", "lantern-post/hoshi"}
    assert len(added["shots"]) == 5 and len(added["scenes"]) == 2 and added["episodes"] == {"lantern-post/ep01"}
    assert len(result.asset_events) == 2 + 5 + 2 + 1


def test_sensor_skips_when_in_sync_and_on_bad_config(instance, configs_dir):
    sync_instance(instance, configs_dir)
    assert isinstance(_tick(instance, configs_dir), dg.SkipReason)
    (configs_dir / "broken.yaml").write_text("show: {slug: x}\n")
    skip = _tick(instance, configs_dir)
    assert isinstance(skip, dg.SkipReason) and "broken.yaml" in skip.skip_message


def test_removed_shot_loses_partition_but_keeps_files(instance, configs_dir, tmp_path):
    sync_instance(instance, configs_dir)
    kept = tmp_path / "storage" / "lantern-post" / "episodes" / "ep01" / "scenes" / "sc01" / "shots" / "sh03" / "clip.mp4"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"rendered")
    _edit(configs_dir, lambda d: d["episodes"][0]["scenes"][0]["shots"].pop(2))
    plan = sync_instance(instance, configs_dir)
    assert plan.remove["shot"] == ["lantern-post/ep01/sc01/sh03"]
    assert "lantern-post/ep01/sc01/sh03" not in instance.get_dynamic_partitions("shots")
    assert kept.read_bytes() == b"rendered"

