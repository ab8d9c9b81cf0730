"""The gates' margins on the adversarial clip suite (tests/metrics/adversarial_clips.py).

    PYTHONPATH=. .venv/bin/python benchmarks/gate_margins.py [--clips] [--installed]

For each gate: its rule, the good clip closest to failing (smallest margin among clips that must
pass) and the bad clip closest to passing (among clips that must fail), with their values;
`--clips` adds every clip's value per gate (✓ passes, ✗ fails by the gate's rule). Runs the
weight-free measures (the store points at an empty folder), or with `--installed` the weights of
the environment's store (ANIME_PIPELINE_MODELS), e.g. to check LPIPS's or AMT's margins on the
same rule. Identity is judged with the palette signature either way: the clips are previz
drawings.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "metrics"))  # the clip generator

from adversarial_clips import all_clips, measure, rules  # noqa: E402

from anime_pipeline.metrics.models import ModelStore  # noqa: E402
from anime_pipeline.metrics.suite import MetricSuite  # noqa: E402


def _closest(clips, values, gate, rule, expected):
    """(name, value) of the clip expected to pass/fail this gate that is closest to the other side."""
    cases = [(rule.margin(values[c.name][gate]), c.name, values[c.name][gate]) for c in clips if c.expect.get(gate) is expected]
    if not cases:
        return None
    margin, name, value = min(cases) if expected else max(cases)
    return name, value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", action="store_true", help="also print every clip's value per gate")
    parser.add_argument("--installed", action="store_true", help="use the weights of ANIME_PIPELINE_MODELS")
    args = parser.parse_args()
    clips = all_clips()
    with tempfile.TemporaryDirectory() as empty:
        store = ModelStore.from_env() if args.installed else ModelStore(root=Path(empty), torch_home=Path(empty) / "t")
        suite = MetricSuite(store)
        values = {clip.name: measure(clip, suite) for clip in clips}
    if suite.unavailable and args.installed:
        print("weight-free where:", "; ".join(f"{m}: {why}" for m, why in sorted(suite.unavailable.items())))
    gate_rules = rules()
    print("| gate | rule | good clip closest to failing | bad clip closest to passing |")
    print("|---|---|---|---|")
    for gate, rule in gate_rules.items():
        good, bad = (_closest(clips, values, gate, rule, expected) for expected in (True, False))
        cells = [f"{name}: {value:.3f}" if name else "—" for name, value in (good or (None, 0), bad or (None, 0))]
        print(f"| {gate} | {'≥' if rule.at_least else '≤'} {rule.threshold:g} | {cells[0]} | {cells[1]} |")
    if args.clips:
        print()
        print("| clip | " + " | ".join(gate_rules) + " |")
        print("|---|" + "---|" * len(gate_rules))
        for clip in clips:
            row = []
            for gate, rule in gate_rules.items():
                value = values[clip.name][gate]
                expected = clip.expect.get(gate)
                mark = ("✓" if rule.passes(value) else "✗") + ("" if expected is None else "*")
                row.append(f"{value:.3f} {mark}")
            print(f"| {clip.name} | " + " | ".join(row) + " |")
        print("\n* = the clip states the decision this gate must reach (all met: tests/metrics/test_adversarial.py)")


if __name__ == "__main__":
    main()
