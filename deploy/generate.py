#!/usr/bin/env python3
"""Writes the files that are repetitive by nature from one description each.

    deploy/generate.py           rewrite the generated files
    deploy/generate.py --check   exit 1 if any generated file is stale

Generated (do not edit by hand; edit this script and rerun it):

    deploy/prometheus/rules/slo.yml   SLI recording rules and burn-rate alerts
    dashboards/*.json                 the Grafana dashboards
    deploy/k8s/base/lab/*.yaml        one Deployment + Service per lab process

Everything else under deploy/ is written by hand. The test suite runs the
`--check` mode (tests/deploy.rs), so a hand edit of a generated file, or a
change here without regenerating, fails the build.

Only the Python standard library is used: JSON is written with `json`, YAML
by hand (the generated YAML is simple, and YAML is a superset of JSON for
the few values that need quoting).
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# No __pycache__ in the source tree.
sys.dont_write_bytecode = True

sys.path.insert(0, str(Path(__file__).resolve().parent / "gen"))

import dashboards  # noqa: E402
import k8s  # noqa: E402
import slo  # noqa: E402


def outputs():
    """Every generated file: path relative to the repo root -> text."""
    files = {"deploy/prometheus/rules/slo.yml": slo.rules_yaml()}
    for name, board in dashboards.all_dashboards().items():
        files[f"dashboards/{name}.json"] = json.dumps(board, indent=2) + "\n"
    for name, text in k8s.lab_manifests().items():
        files[f"deploy/k8s/base/lab/{name}"] = text
    return files


def main(argv):
    check = "--check" in argv
    stale = []
    for rel, text in outputs().items():
        path = ROOT / rel
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if check:
            stale.append(rel)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {rel}")
    if stale:
        print("stale generated files (run deploy/generate.py):", file=sys.stderr)
        for rel in stale:
            print(f"  {rel}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
