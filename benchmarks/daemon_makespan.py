"""Shots through the daemon as a user drives them: runs launched the way the UI launches them (GraphQL
`launchRun` against a dagster-webserver, one run per shot, all at once), the queued run coordinator on the
production dagster.yaml with PostgreSQL, two fake ComfyUI servers in processes of their own standing for two
GPUs, and — with `--executor celery` — a Celery worker per card on RabbitMQ (Redis results).

    .venv/bin/python benchmarks/daemon_makespan.py --shots 20 --render 8 [--executor celery] [--yaml FILE]

Prints makespan (first launch → last run success) against the ideal (shots × render / 2), the per-run
orchestration overhead (run wall time − render; median), the queue wait, and the idle time of each card
between consecutive renders (from the servers' own history: one prompt's success to the next one's start).
`--yaml` runs against another dagster.yaml (the before/after of a tuning).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import psycopg2
from dagster_graphql import DagsterGraphQLClient

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVE = REPO / "tests" / "deploy" / "serve_fake_comfyui.py"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait(condition, what: str, deadline_s: float) -> None:
    until = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > until:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def history(url: str) -> list[tuple[float, float]]:
    """(start, success) of every prompt the server ran, from its /history, in seconds."""
    import json

    with urllib.request.urlopen(f"{url}/history", timeout=10) as response:
        entries = json.load(response)
    spans = []
    for entry in entries.values():
        stamps = {kind: data["timestamp"] / 1000 for kind, data in entry["status"]["messages"]}
        spans.append((stamps["execution_start"], stamps["execution_success"]))
    return sorted(spans)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shots", type=int, default=20)
    parser.add_argument("--render", type=float, default=8.0)
    parser.add_argument("--executor", choices=["in_process", "multiprocess", "celery"], default="in_process")
    parser.add_argument("--yaml", type=Path, default=REPO / "dagster.yaml")
    parser.add_argument("--launch", choices=sorted(LAUNCHES), default="runs",
                        help="runs: one run per shot, launched as the UI's Launch does; backfill: one UI backfill "
                             "of every shot asset (the backfill daemon); cli: `dagster job launch` of a job of "
                             "every shot")
    parser.add_argument("--warm-up", action=argparse.BooleanOptionalAction, default=True,
                        help="launch one empty run before the measured span (default: on)")
    parser.add_argument("--timeline", action="store_true", help="print the first run's events with their times")
    parser.add_argument("--steps", action="store_true",
                        help="print each shot step's moments: asked for a card, claimed it, released it")
    args = parser.parse_args()
    procs: list[subprocess.Popen] = []
    db = f"anime_pipeline_bench_{uuid.uuid4().hex[:8]}"
    vhost = f"anime-bench-{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(dbname="postgres", **PG)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{db}"')
    tmp = Path(tempfile.mkdtemp(prefix="daemon-makespan-"))
    try:
        home = tmp / "home"
        home.mkdir()
        shutil.copy(args.yaml, home / "dagster.yaml")
        ports = [free_port(), free_port()]
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        env = {**os.environ, "DAGSTER_HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
               "PYTHONPATH": str(REPO), "PGHOST": PG["host"], "PGPORT": str(PG["port"]), "PGUSER": PG["user"],
               "PGDATABASE": db, "BENCH_SHOTS": str(args.shots), "ANIME_PIPELINE_STORAGE": str(tmp / "storage"),
               "ANIME_PIPELINE_COMFYUI_URLS": ",".join(f"{i}={u}" for i, u in enumerate(urls)),
               "ANIME_PIPELINE_EXECUTOR": args.executor}
        if args.executor == "celery":
            subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
            subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True)
            env |= {"ANIME_PIPELINE_CELERY_BROKER": f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
                    "ANIME_PIPELINE_CELERY_BACKEND": "redis://127.0.0.1:6379/0"}
        os.environ.update({k: v for k, v in env.items() if k.startswith("PG")})
        with dg.DagsterInstance.from_config(str(home)):  # the schema, once, before the processes start
            pass
        (tmp / "workspace.yaml").write_text(
            f"load_from:\n  - python_file:\n      relative_path: {REPO / 'benchmarks' / 'daemon_makespan_defs.py'}\n"
            f"      working_directory: {REPO}\n      location_name: bench\n")
        for port in ports:
            server = subprocess.Popen([sys.executable, str(SERVE), str(port), str(args.render), str(tmp / f"{port}.json")],
                                      stdout=subprocess.PIPE, text=True)
            procs.append(server)
            assert server.stdout.readline().strip() == "ready"
        log = open(tmp / "services.log", "wb")

        def start(*command: str) -> None:
            procs.append(subprocess.Popen(list(command), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))

        web = free_port()
        start(str(BIN / "dagster-webserver"), "-w", str(tmp / "workspace.yaml"), "-p", str(web))
        start(str(BIN / "dagster-daemon"), "run", "-w", str(tmp / "workspace.yaml"))
        if args.executor == "celery":
            for gpu in ("0", "1"):
                start(str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y",
                      str(REPO / "celery.yaml"), "-i", "anime_pipeline.definitions", "-q", f"gpu-{gpu}",
                      "-n", f"gpu{gpu}-{vhost}")
        wait(lambda: answers(f"http://127.0.0.1:{web}/server_info"), "the webserver", 180)
        client = DagsterGraphQLClient("127.0.0.1", port_number=web)
        wait(lambda: _loaded(client), "the code location", 180)
        time.sleep(5)  # the daemon's and workers' own start-up, outside the measured span
        if args.warm_up:  # a daemon that has launched a run since it started (its launcher's fork server is up)
            with dg.DagsterInstance.from_config(str(home)) as instance:
                warm = client.submit_job_execution("warm_up", repository_location_name="bench")
                wait(lambda: instance.get_run_by_id(warm).is_finished, "the warm-up run", 120)
        started = time.time()
        runs = LAUNCHES[args.launch](client, args.shots, tmp / "workspace.yaml", env)
        submitted = time.time() - started
        with dg.DagsterInstance.from_config(str(home)) as instance:
            def done() -> bool:
                run_ids = runs(instance)
                records = instance.get_run_records(dg.RunsFilter(run_ids=run_ids)) if run_ids else []
                return bool(run_ids) and all(r.dagster_run.is_finished for r in records)
            wait(done, "every run to finish", args.shots * args.render * 3 + 300)
            records = instance.get_run_records(dg.RunsFilter(run_ids=runs(instance)))
            failed = [r.dagster_run.run_id for r in records if not r.dagster_run.is_success]
            if failed:
                events = instance.all_logs(failed[0], of_type={dg.DagsterEventType.STEP_FAILURE,
                                                               dg.DagsterEventType.RUN_FAILURE})
                raise SystemExit(f"{len(failed)} run(s) failed, e.g. {failed[0]}: "
                                 + " | ".join(str(e.dagster_event.event_specific_data.error.cause or e.dagster_event.event_specific_data.error)[-3000:] for e in events[:1]))
            first = min(records, key=lambda r: r.start_time).dagster_run.run_id
            steps = step_moments(instance, args.shots)
            left = {f"gpu-{i}": instance.event_log_storage.get_concurrency_info(f"gpu-{i}").pending_steps
                    for i in range(len(urls))}
            timeline = [(e.timestamp - started, e.dagster_event.event_type_value if e.dagster_event else e.user_message[:60])
                        for e in instance.all_logs(first)]
        makespan = max(r.end_time for r in records) - started
        ideal = args.shots * args.render / 2
        spans = [history(url) for url in urls]
        # a run's own renders, in wall time: one shot's, or one run's shots spread over the cards it used
        cards_used = sum(1 for card in spans if card) if len(records) == 1 else 1
        run_renders = args.render * args.shots / len(records) / cards_used
        overhead = [r.end_time - r.start_time - run_renders for r in records]
        queued = [r.start_time - r.create_timestamp.timestamp() for r in records]
        idle = [b[0] - a[1] for card in spans for a, b in zip(card[:-1], card[1:])]
        per_card = [len(card) for card in spans]
        first_render = min(card[0][0] for card in spans if card) - started
        first_start = min(r.start_time for r in records) - started
        after_last = max(r.end_time for r in records) - max(card[-1][1] for card in spans if card)
        busy = [sum(end - start for start, end in card) for card in spans]
        print(f"{args.executor}, {args.shots} shots × {args.render:g} s, {args.launch} ({len(records)} run(s)), "
              f"{args.yaml.name}{'' if args.warm_up else ', cold daemon'}: makespan {makespan:.1f} s, "
              f"ideal {ideal:.1f} s, ratio {makespan / ideal:.3f}; per run: overhead median {statistics.median(overhead):.2f} s "
              f"(max {max(overhead):.2f}), queue wait median {statistics.median(queued):.1f} s; card idle between "
              f"renders median {statistics.median(idle or [0]):.2f} s, max {max(idle or [0]):.2f} s; renders per card {per_card}; "
              f"all submitted after {submitted:.1f} s, the first run started {first_start:.1f} s and the first "
              f"render {first_render:.1f} s (cards rendered {', '.join(f'{card[0][0] - started:.1f}–{card[-1][1] - started:.1f} s' for card in spans if card)}) "
              f"after the first launch, last run ended {after_last:.1f} s after the "
              f"last render; cards busy {', '.join(f'{b / makespan:.0%}' for b in busy)} of the makespan")
        if steps:
            split = idle_split(spans, steps)
            print("card idle, split (median s): " + ", ".join(f"{part} {value:.3f}" for part, value in split.items()))
        if args.steps:
            moments = sorted((m["asked"], card, m) for card, ms in steps.items() for m in ms)
            print(f"claims left in the cards' queues: {left}")
            print("shot steps (s after the first launch): card, asked, claimed, released")
            print("\n".join(f"  {card}  {m['asked'] - started:7.2f}  {m['claimed'] - started:7.2f}  "
                            f"{m['released'] - started:7.2f}" for _, card, m in moments))
        if args.timeline:
            print("the first run's events (s after the first launch):")
            print("\n".join(f"  {at:6.2f}  {what}" for at, what in timeline))
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, 9) if proc.args[0] != sys.executable else proc.terminate()
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(timeout=30)
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        if args.executor == "celery":
            subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def step_moments(instance: dg.DagsterInstance, shots: int) -> dict[str, list[dict[str, float]]]:
    """Each card's shot steps in claim order, with the moments the step recorded (asked for / claimed the card,
    outputs downloaded, card released); empty when the step records none (an older defs file)."""
    by_card: dict[str, list[dict[str, float]]] = {}
    for i in range(shots):
        event = instance.get_latest_materialization_event(dg.AssetKey(f"shot_{i:03d}"))
        metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
        if "claimed" not in metadata:
            return {}
        moments = {k: v.value for k, v in metadata.items() if k != "gpu"}
        by_card.setdefault(str(metadata["gpu"].value), []).append(moments)
    return {card: sorted(moments, key=lambda m: m["claimed"]) for card, moments in by_card.items()}


def idle_split(spans: list[list[tuple[float, float]]], steps: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """Where a card's idle time between two renders goes: the first step's download and release after its
    render, the hand-over of the card's slot to the next step, and the next step's start on the server."""
    parts: dict[str, list[float]] = {"download": [], "release": [], "hand-over": [], "next start": []}
    for card, moments in zip(sorted(steps), [spans[int(card)] for card in sorted(steps)]):
        for (a, b), (render_a, render_b) in zip(zip(steps[card], steps[card][1:]), zip(moments, moments[1:])):
            parts["download"].append(a["downloaded"] - render_a[1])
            parts["release"].append(a["released"] - a["downloaded"])
            parts["hand-over"].append(b["claimed"] - a["released"])
            parts["next start"].append(render_b[0] - b["claimed"])
    return {part: statistics.median(values) for part, values in parts.items() if values}


RunIds = Callable[[dg.DagsterInstance], list[str]]


def launch_runs(client: DagsterGraphQLClient, shots: int, workspace: Path, env: dict[str, str]) -> RunIds:
    """One run per shot, through GraphQL `launchRun` (the UI's Launch button), all at once."""
    run_ids = [client.submit_job_execution(f"render_shot_{i:03d}", repository_location_name="bench")
               for i in range(shots)]
    return lambda _instance: run_ids


BACKFILL = """mutation ($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""


def launch_backfill(client: DagsterGraphQLClient, shots: int, workspace: Path, env: dict[str, str]) -> RunIds:
    """One asset backfill of every shot, as the UI's Materialize → backfill sends it; the backfill daemon
    requests its runs."""
    params = {"partitionsByAssets": [{"assetKey": {"path": [f"shot_{i:03d}"]}, "partitions": None}
                                     for i in range(shots)]}
    answer = client._execute(BACKFILL, {"params": params})["launchPartitionBackfill"]  # noqa: SLF001
    if answer["__typename"] != "LaunchBackfillSuccess":
        raise SystemExit(f"the backfill was refused: {answer}")
    backfill = answer["backfillId"]

    def run_ids(instance: dg.DagsterInstance) -> list[str]:
        if instance.get_backfill(backfill).status.value == "REQUESTED":  # still requesting runs
            return []
        return [run.run_id for run in instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill}))]
    return run_ids


def launch_cli(client: DagsterGraphQLClient, shots: int, workspace: Path, env: dict[str, str]) -> RunIds:
    """`dagster job launch` of the job of every shot: one run through the queued run coordinator."""
    subprocess.run([str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-l", "bench", "-j", "render_all"],
                   cwd=REPO, env=env, check=True, capture_output=True)

    def run_ids(instance: dg.DagsterInstance) -> list[str]:
        return [run.run_id for run in instance.get_runs(dg.RunsFilter(job_name="render_all"))]
    return run_ids


LAUNCHES = {"runs": launch_runs, "backfill": launch_backfill, "cli": launch_cli}


def _loaded(client: DagsterGraphQLClient) -> bool:
    """Whether the webserver has loaded the bench location (the UI shows its jobs)."""
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename ... on PythonError { message } } } } } }"
    try:
        entries = client._execute(query)["workspaceOrError"]["locationEntries"]  # noqa: SLF001
    except Exception:
        return False
    kinds = {e["name"]: (e["locationOrLoadError"] or {}).get("__typename") for e in entries}
    if kinds.get("bench") == "PythonError":
        error = next(e["locationOrLoadError"]["message"] for e in entries if e["name"] == "bench")
        raise SystemExit(f"the bench code location failed to load: {error}")
    return kinds.get("bench") == "RepositoryLocation"


if __name__ == "__main__":
    main()
