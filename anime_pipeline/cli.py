"""`anime-pipeline`: demo, dev, validate, sync, status, review, replenish, backfill, reproduce, models, score, studio.

Errors print as one line with the fix, never a traceback (set ANIME_PIPELINE_DEBUG=1 for one).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from anime_pipeline.config import ConfigError, Project, check_files
from anime_pipeline.config.loader import show_files
from anime_pipeline.paths import StoragePaths
from anime_pipeline.settings import (
    Settings,
    dagster_ui_url,
    debug,
    default_dagster_home,
    use_dagster_home,
    user_name,
)
from anime_pipeline.studio import cli as studio_cli

EMBEDDED_INSTANCE_YAML = """\
# Embedded instance for `anime-pipeline demo` and `dev`: SQLite in this folder, no services needed.
# Production uses the repository's dagster.yaml (PostgreSQL); see the README.
concurrency:
  pools:
    default_limit: 1   # one step per GPU pool at a time
run_monitoring:        # `dev`'s daemon fails runs whose process died and frees their pool slots
  enabled: true
  poll_interval_seconds: 30
  free_slots_after_run_end_seconds: 0
telemetry:
  enabled: false
"""


class CliError(Exception):
    def __init__(self, message: str, fix: str = ""):
        super().__init__(message)
        self.fix = fix


def _instance():
    import dagster as dg

    home = default_dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(EMBEDDED_INSTANCE_YAML)
    use_dagster_home(home)
    return dg.DagsterInstance.get()


def _project(settings: Settings) -> Project:
    return Project.load(settings.configs_dir)


def cmd_validate(args, settings: Settings) -> int:
    files = [Path(f) for f in args.files] or show_files(settings.configs_dir)
    if not files:
        raise CliError(f"no show files in {settings.configs_dir}", "add a .yaml show file (see project_configs/)")
    checks = check_files(files, None if args.files else settings.configs_dir / "music")
    for check in checks:  # every file is checked and reported; show slugs are also unique across them
        if check.error is not None:
            print(check.error.render(), file=sys.stderr)
            continue
        config = check.config
        shots = sum(len(s.shots) for e in config.episodes for s in e.scenes)
        print(f"{check.path}: ok — {config.show.title!r}: {len(config.characters)} characters, "
              f"{len(config.episodes)} episodes, {shots} shots")
    return 1 if any(check.error for check in checks) else 0


def cmd_sync(args, settings: Settings) -> int:
    from anime_pipeline.sensors.sync import reload_dagster_ui

    project = _project(settings)
    counts = {"characters": len(project.characters), "shots": len(project.shots), "scenes": len(project.scenes),
              "episodes": len(project.episodes)}
    print(f"{settings.configs_dir}: valid — {', '.join(f'{n} {k}' for k, n in counts.items())} "
          f"in {len(project.shows)} show(s)")
    print(reload_dagster_ui(args.dagster_url))
    return 0


def cmd_demo(args, settings: Settings) -> int:
    start = time.perf_counter()
    project = _project(settings)
    episodes = [k for k in project.episodes if not args.show or k.startswith(f"{args.show}/")]
    if not episodes:
        raise CliError(f"no show {args.show!r} in {settings.configs_dir}", f"choose one of {sorted(project.shows)}")
    backends = {f"{k}: {v}" for cfg in project.shows.values() for k, v in cfg.backends.model_dump().items()
                if k in ("renderer", "reviewer", "director", "trainer", "speech", "music", "publisher")}
    instance = _instance()
    print(f"rendering {len(episodes)} episode(s) with {', '.join(sorted(backends))} — Dagster home {instance.root_directory}")
    if not _run_episodes(settings, project, instance, episodes, approve_as="demo"):
        print("stopped: a gate failed (see above)")
        return 1
    print(f"finished in {time.perf_counter() - start:.1f} s")
    paths = StoragePaths(settings.storage_root)
    for key in episodes:
        print(f"episode: {paths.episode(key) / 'episode.mp4'}")
    print(f"library: {settings.library_root / 'Shows'}")
    print("browse it all in the Dagster UI: anime-pipeline dev")
    return 0


def _run_episodes(settings: Settings, project: Project, instance, episodes: list[str],
                  approve_as: str | None = None) -> bool:
    from anime_pipeline.definitions import build_definitions
    from anime_pipeline.recovery import clean_dead_runs
    from anime_pipeline.runner import Runner, plan_for
    from anime_pipeline.storage import clean_leftovers

    for dead in clean_dead_runs(instance):
        print(f"cleaned up {dead.describe()}")
    for leftover in clean_leftovers(settings.storage_root, recursive=True):
        print(f"cleaned up {leftover}: a temporary file of a write that never finished")

    try:
        stages = plan_for(project, episodes)
    except KeyError as exc:
        raise CliError(str(exc.args[0]), "episode keys look like show/episode, e.g. lantern-post/ep01") from None
    runner = Runner(build_definitions(settings, project), instance, StoragePaths(settings.storage_root))
    return runner.run_plan(stages, project, approve_as=approve_as)


def cmd_backfill(args, settings: Settings) -> int:
    project = _project(settings)
    return 0 if _run_episodes(settings, project, _instance(), args.episodes) else 1


def cmd_status(args, settings: Settings) -> int:
    from anime_pipeline.definitions import build_definitions
    from anime_pipeline.status import collect_status, render_status

    project = _project(settings)
    if args.show and args.show not in project.shows:
        raise CliError(f"no show {args.show!r} in {settings.configs_dir}", f"choose one of {sorted(project.shows)}")
    statuses = collect_status(_instance(), build_definitions(settings, project), args.show)
    if args.json:
        print(json.dumps([s.model_dump(mode="json") for s in statuses], indent=2))
        return 0
    for line in render_status(statuses):
        print(line)
    return 0


def cmd_review(args, settings: Settings) -> int:
    from anime_pipeline.production.candidates import DecisionLog, dataset_state

    project = _project(settings)
    if args.character not in project.characters:
        raise CliError(f"unknown character {args.character!r}", f"choose one of {sorted(project.characters)}")
    paths = StoragePaths(settings.storage_root)
    log = DecisionLog(paths.decisions_log(args.character))
    state = dataset_state(paths.candidates(args.character), log)
    if args.action == "list":
        for title, group in (("awaiting review", state.pending), ("approved", state.approved), ("rejected", state.rejected)):
            print(f"{title}: {len(group)}")
            for c in group:
                verdict = c.record.verdict
                print(f"  {c.id}  score {verdict.score:.2f}  {c.image_path}  {'; '.join(verdict.reasons)}")
        return 0
    known = {c.id for c in [*state.pending, *state.approved, *state.rejected]}
    ids = [c.id for c in state.pending] if args.all_pending else args.ids
    unknown = [i for i in ids if i not in known]
    if unknown or not ids:
        raise CliError(f"no such candidate(s) {unknown}" if unknown else "name candidates or use --all-pending",
                       f"see `anime-pipeline review list {args.character}`")
    decision = "approve" if args.action == "approve" else "reject"
    for candidate_id in ids:
        log.record(candidate_id, decision, f"human:{args.user}", args.reason)
    print(f"{decision}d {len(ids)} candidate(s) of {args.character}; re-materialize approved_dataset to use them")
    return 0


def cmd_studio(args, settings: Settings) -> int:
    """The studio, with the replenishment panel fed from this Dagster home."""
    return studio_cli.run(args, settings, replenishment=_replenishment_source(settings))


def _replenishment_source(settings: Settings):
    from anime_pipeline import dagster_compat
    from anime_pipeline.sensors.dataset_replenishment import (
        SENSOR_NAME,
        replenishment_state,
    )
    from anime_pipeline.studio.models import ReplenishmentView

    instance = _instance()

    def view(key: str) -> ReplenishmentView | None:
        states = {s.key: s for s in replenishment_state(instance, _project(settings), StoragePaths(settings.storage_root))}
        running = dagster_compat.sensor_running(instance, SENSOR_NAME, default_running=False)
        return ReplenishmentView(running, states[key]) if key in states else None
    return view


def cmd_replenish(args, settings: Settings) -> int:
    from anime_pipeline import dagster_compat
    from anime_pipeline.sensors.dataset_replenishment import (
        SENSOR_NAME,
        replenishment_state,
    )

    project = _project(settings)
    instance = _instance()
    if args.action in ("on", "off"):
        workspace = Path("workspace.yaml")
        if not workspace.exists():
            raise CliError("workspace.yaml not found in this folder",
                           "run `anime-pipeline replenish on|off` from the repository root, where `anime-pipeline dev` runs")
        try:
            running = dagster_compat.set_sensor_running(instance, SENSOR_NAME, args.action == "on", workspace)
        except dagster_compat.SensorSwitchError as exc:
            raise CliError(str(exc), "run `anime-pipeline validate`, then try again") from None
        print(f"{SENSOR_NAME} is {'on' if running else 'off'} in the Dagster home {instance.root_directory}"
              + (": the daemon (`anime-pipeline dev`) ticks it every 30 s" if running else ""))
        return 0
    if args.action == "reset":
        return _reset_rejects(args, project, StoragePaths(settings.storage_root))
    running = dagster_compat.sensor_running(instance, SENSOR_NAME, default_running=False)
    states = replenishment_state(instance, project, StoragePaths(settings.storage_root))
    if args.json:
        print(json.dumps({"sensor": SENSOR_NAME, "running": running,
                          "characters": [s.model_dump(mode="json") for s in states]}, indent=2))
        return 0
    print(f"{SENSOR_NAME}: {'on' if running else 'off'} (`anime-pipeline replenish on|off`)")
    for state in states:
        for line in _replenishment_lines(state):
            print(line)
    return 0


def _replenishment_lines(state) -> list[str]:
    from anime_pipeline.production.replenishment import utc

    c = state.counts
    if state.eligible or state.held_by == "target":
        next_at = "now" if state.eligible else "none, target reached"
    else:
        next_at = utc(state.next_eligible_at) if state.next_eligible_at is not None else "when a person or a run acts"
    lines = [f"{state.key}  {c.approved}/{c.target} approved, {c.awaiting_review} awaiting review, "
             f"{c.rejected} rejected ({c.consecutive_rejects} in a row), {state.batches_today} batch(es) in 24 h, "
             f"next batch: {next_at}"]
    lines += [f"    {guard.describe()}" for guard in state.guards]
    if state.last_batch is not None:
        b = state.last_batch
        decided = ", ".join(f"{cid} {d}" for cid, d in b.automatic.items())
        lines.append(f"    last batch {b.batch} at {b.finished_at}: {decided}; {b.learner}")
    return lines


def _reset_rejects(args, project: Project, paths: StoragePaths) -> int:
    from anime_pipeline.production.candidates import list_candidates
    from anime_pipeline.production.replenishment import ResetLog

    if args.character not in project.characters:
        raise CliError(f"unknown character {args.character!r}" if args.character else "name the character to reset",
                       f"choose one of {sorted(project.characters)}")
    made = list_candidates(paths.candidates(args.character))
    last = made[-1].id if made else None
    ResetLog(paths.replenishment_log(args.character)).record(f"human:{args.user}", last)
    print(f"{args.character}: rejects up to {last or 'now'} no longer count against the consecutive-rejects guard")
    return 0


def cmd_reproduce(args, settings: Settings) -> int:
    from anime_pipeline.production.shot_clip import ShotManifest
    from anime_pipeline.reproduce import reproduce_shot

    if args.asset != "shot_clip":
        raise CliError(f"reproduce supports shot_clip, not {args.asset!r}",
                       "other assets re-render deterministically when re-materialized from their manifests' inputs")
    project = _project(settings)
    if args.key not in project.shots:
        raise CliError(f"unknown shot {args.key!r}", f"choose one of {sorted(project.shots)}")
    ref = project.shots[args.key]
    shot_dir = StoragePaths(settings.storage_root).shot(ref.key)
    manifest = ShotManifest.load(shot_dir)
    if manifest is None:
        raise CliError(f"{ref.key} has no recorded render: there is nothing to reproduce",
                       f"materialize its shot_clip first (anime-pipeline backfill {ref.config.show.slug}/{ref.episode.slug})")
    renderer = _renderer_for(manifest, ref, settings)
    try:
        result = reproduce_shot(ref, shot_dir, manifest, renderer)
    finally:
        client = getattr(renderer, "client", None)
        if client is not None:
            client.close()
    print(f"{ref.key} on {renderer.backend}: {result.summary()}")
    return 0 if result.identical else 1


def _renderer_for(manifest, ref, settings: Settings):
    """The backend that made the recording: previz, or the ComfyUI server now configured for its GPU."""
    from anime_pipeline.drawings import is_previz
    from anime_pipeline.production.character_reference import front_panel
    from anime_pipeline.render.comfyui import ComfyUIRenderer
    from anime_pipeline.render.previz import PrevizRenderer
    from anime_pipeline.services.comfyui import ComfyUIClient

    if is_previz(manifest.backend):
        return PrevizRenderer()
    params = manifest.chosen.renderer_params
    url = dict(settings.comfyui_urls).get(manifest.device, params["server"]["url"])
    backends = ref.config.backends
    paths = StoragePaths(settings.storage_root)
    references = {slug: p for slug in ref.shot.characters
                  for p in [front_panel(paths, f"{ref.config.show.slug}/{slug}")] if p}
    return ComfyUIRenderer(ComfyUIClient(url), backends.comfyui_workflows or None, device=manifest.device,
                           style=ref.config.show.style, references=references, overrides=backends.comfyui_overrides)


def cmd_models(args, settings: Settings) -> int:
    from anime_pipeline.metrics.registry import model_rows

    store = settings.models
    print(f"models root {store.root} (ANIME_PIPELINE_MODELS), torch home {store.torch_home}, device {store.device}")
    for row in model_rows(store):
        where = str(row.path) if row.path else "(no weights needed)"
        state = "installed" if row.installed else f"missing — {row.missing}" if row.missing else "missing"
        print(f"  {row.metric:<20} {row.backend:<48} {state}\n  {'':<20} {where}\n  {'':<20} active: {row.active}")
    print("layout and how to fetch weights on a machine with internet: README.md, section 'Model weights'")
    return 0


def cmd_score(args, settings: Settings) -> int:
    from anime_pipeline.metrics.suite import MetricSuite
    from anime_pipeline.scoring import ScoringError, appearances, as_json, read_clip, render, score, target_for

    paths = StoragePaths(settings.storage_root)
    try:
        project = _project(settings) if args.show else None
        target = target_for(project, paths, args.show, args.shot, tuple(args.character))
        clip = read_clip(Path(args.path), args.fps, target.fps)
        report = score(clip, target, appearances(target, paths), MetricSuite(settings.models))
    except ScoringError as error:
        raise CliError(str(error), error.fix) from None
    print(json.dumps(as_json(report), indent=2) if args.json else "\n".join(render(report)))
    return 0 if report.passed else 1


def cmd_dev(args, settings: Settings) -> int:
    _instance()
    workspace = Path("workspace.yaml")
    if not workspace.exists():
        raise CliError("workspace.yaml not found in this folder", "run `anime-pipeline dev` from the repository root")
    command = [sys.executable, "-m", "dagster", "dev", "-w", str(workspace), "-p", str(args.port)]
    print(f"starting the Dagster UI on http://127.0.0.1:{args.port} (Dagster home {default_dagster_home()})")
    return run_group(command)


STOP_GRACE_S = 20.0  # how long `dagster dev` may take to stop its webserver, daemon and code server


def run_group(command: list[str]) -> int:
    """Run `command` in a process group of its own and pass SIGTERM/SIGINT on to the whole group, so that
    stopping this process stops everything it started (dagster dev's webserver, daemon and code server)."""
    child = subprocess.Popen(command, start_new_session=True)

    def forward(signum: int, _frame) -> None:
        _signal_group(child.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_group(child)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:  # the group already ended
        pass


def _stop_group(child: subprocess.Popen) -> None:
    """What is left of the group once its leader is gone or asked to stop: SIGTERM, then SIGKILL after a grace."""
    _signal_group(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and _group_alive(child.pid):
        child.poll()  # reaps the leader, so the group empties
        time.sleep(0.1)
    _signal_group(child.pid, signal.SIGKILL)
    child.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anime-pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="render the sample show end to end on the embedded defaults")
    demo.add_argument("--show", help="only this show slug")
    dev = sub.add_parser("dev", help="the Dagster UI on this code location")
    dev.add_argument("--port", type=int, default=3000)
    validate = sub.add_parser("validate", help="check show files (all of project_configs/ by default)")
    validate.add_argument("files", nargs="*")
    sync = sub.add_parser("sync", help="validate the show files and reload a running Dagster UI's assets")
    sync.add_argument("--dagster-url", default=dagster_ui_url())
    status = sub.add_parser("status", help="every artifact: materialized, stale or not and why, gate results")
    status.add_argument("--show")
    status.add_argument("--json", action="store_true", help="machine-readable, one object per artifact")
    review = sub.add_parser("review", help="list, approve or reject dataset candidates")
    review.add_argument("action", choices=["list", "approve", "reject"])
    review.add_argument("character", help="character key, e.g. lantern-post/hoshi")
    review.add_argument("ids", nargs="*")
    review.add_argument("--all-pending", action="store_true")
    review.add_argument("--user", default=user_name())
    review.add_argument("--reason", default="")
    replenish = sub.add_parser("replenish", help="the dataset replenishment sensor: on, off, status; "
                                                 "reset CHARACTER's consecutive-rejects guard")
    replenish.add_argument("action", choices=["on", "off", "status", "reset"])
    replenish.add_argument("character", nargs="?", help="for reset: character key, e.g. lantern-post/mio")
    replenish.add_argument("--user", default=user_name())
    replenish.add_argument("--json", action="store_true", help="status as JSON")
    reproduce = sub.add_parser("reproduce", help="re-render a recorded output and compare it with the recording")
    reproduce.add_argument("asset", help="shot_clip")
    reproduce.add_argument("key", help="shot key, e.g. lantern-post/ep01/sc01/sh01")
    sub.add_parser("models", help="which metric weights are installed, where, and which fallback is active")
    score = sub.add_parser("score", help="judge a clip (MP4 or folder of PNG frames) by exactly the shot gates; "
                                         "exit status 1 when a gate fails")
    score.add_argument("path", help="an MP4 (any video ffmpeg decodes) or a folder of PNG frames")
    score.add_argument("--show", help="judge with this show's thresholds and style")
    score.add_argument("--shot", help="and as this shot (its characters' identity), e.g. ep01/sc01/sh01")
    score.add_argument("--character", action="append", default=[], help="a character of --show whose identity counts "
                                                                         "(repeatable)")
    score.add_argument("--fps", type=float, help="a PNG folder's frame rate (default: the show's, else 24)")
    score.add_argument("--json", action="store_true", help="machine-readable")
    backfill = sub.add_parser("backfill", help="build everything one or more episodes need, in order")
    backfill.add_argument("episodes", nargs="+", help="episode keys, e.g. lantern-post/ep01")
    studio_cli.add_parser(sub)
    return parser


COMMANDS = {"validate": cmd_validate, "sync": cmd_sync, "demo": cmd_demo, "backfill": cmd_backfill,
            "status": cmd_status, "review": cmd_review, "replenish": cmd_replenish, "dev": cmd_dev,
            "reproduce": cmd_reproduce, "models": cmd_models, "score": cmd_score, "studio": cmd_studio}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, Settings.from_env())
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        print("fix: correct the field named above, then run `anime-pipeline validate`", file=sys.stderr)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.fix:
            print(f"fix: {exc.fix}", file=sys.stderr)
    except BrokenPipeError:  # e.g. `anime-pipeline status | head`
        return 0
    except (FileNotFoundError, KeyError, ValueError) as exc:
        if debug():
            raise
        print(f"error: {exc}", file=sys.stderr)
        print("fix: run `anime-pipeline validate` and `anime-pipeline sync`; ANIME_PIPELINE_DEBUG=1 shows a traceback",
              file=sys.stderr)
    except Exception as exc:  # a service or database that is down: one line, not a traceback
        if debug():
            raise
        print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        print("fix: check that the service or database named above is reachable; "
              "ANIME_PIPELINE_DEBUG=1 shows a traceback", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
