"""Studio review page: time to first contentful paint of a character's queue, in Debian's chromium.

    .venv/bin/python benchmarks/studio_first_paint.py [--candidates 100] [--loads 15]

Real candidates (previz renderer + heuristic reviewer, the sample show's non-human character, so
every one awaits a person), the studio under uvicorn on a loopback port, and a fresh browser
context per load (nothing cached). first-contentful-paint comes from the Performance API; the
server's share is the navigation's responseEnd. A 10-candidate queue is measured alongside for
the ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "studio"))

from studio_data import HOSHI, SAMPLE, make_candidates, serve_in_thread  # noqa: E402

from anime_pipeline.studio.app import StudioConfig  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
PAINT = """() => new Promise(resolve => {
    const found = () => performance.getEntriesByName("first-contentful-paint")[0];
    const navigation = performance.getEntriesByType("navigation")[0];
    const done = entry => resolve({fcp: entry.startTime, response_end: navigation.responseEnd,
                                   bytes: navigation.transferSize});
    if (found()) return done(found());
    new PerformanceObserver(list => done(list.getEntries()[0])).observe({type: "paint", buffered: true});
})"""


def measure(browser, url: str, loads: int) -> dict[str, list[float]]:
    runs: dict[str, list[float]] = {"fcp": [], "response_end": [], "bytes": []}
    for _ in range(loads):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(url, wait_until="load")
        for name, value in page.evaluate(PAINT).items():
            runs[name].append(value)
        context.close()
    return runs


def storage_with(count: int, base: Path) -> StudioConfig:
    configs, root = base / f"configs-{count}", base / f"storage-{count}"
    configs.mkdir(parents=True)
    shutil.copy(SAMPLE, configs / SAMPLE.name)
    start = time.perf_counter()
    make_candidates(configs, root, HOSHI, count)
    print(f"{count} candidates made in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return StudioConfig(storage_root=root, configs_dir=configs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--loads", type=int, default=15)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        results = {}
        for count in (10, args.candidates):
            with serve_in_thread(storage_with(count, Path(tmp))) as url:
                measure(browser, f"{url}/characters/{HOSHI}", 2)  # warm the server and the browser
                results[count] = measure(browser, f"{url}/characters/{HOSHI}", args.loads)
        browser.close()
    for count, runs in results.items():
        fcp = statistics.median(runs["fcp"])
        print(f"{count:>4} candidates: first-contentful-paint median {fcp:.0f} ms "
              f"(min {min(runs['fcp']):.0f}, max {max(runs['fcp']):.0f}; {len(runs['fcp'])} loads), "
              f"HTML responseEnd median {statistics.median(runs['response_end']):.0f} ms, "
              f"HTML {statistics.median(runs['bytes']) / 1024:.0f} KiB")
    small, large = (statistics.median(results[c]["fcp"]) for c in (10, args.candidates))
    print(f"ratio {args.candidates} / 10 candidates: {large / small:.2f}")


if __name__ == "__main__":
    main()
