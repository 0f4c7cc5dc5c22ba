"""`make bench` / `make bench-full`: run every benchmark and write BENCHMARKS.md.

    uv run python benchmarks/run.py [--size small|full] [--only engine,report,…]

Each benchmark module runs in its own process, on its own fresh PostgreSQL database on the
server of BENCH_DATABASE_URL (default a local server), named after its database
(``trackstat_bench_<name>`` by default), dropped and created by each run. ``small`` finishes
in under five minutes; ``full`` is the 1,000,000-patient run of issue 8.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, Result, Section, machine_description, section_read, settle

# In the order they run and appear in BENCHMARKS.md.
MODULES = ["engine", "send", "bulk_patients", "report", "experiments", "web"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=["small", "full"], default="small")
    parser.add_argument("--only", help="comma-separated module names (default: all)")
    args = parser.parse_args()
    modules = args.only.split(",") if args.only else MODULES
    started = time.perf_counter()
    sections: list[Section] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in modules:
            if not (ROOT / "benchmarks" / f"{name}.py").exists():
                print(f"(benchmarks/{name}.py does not exist yet: skipped)", flush=True)
                continue
            out = Path(tmp) / f"{name}.json"
            # The previous benchmark's writes on disk before this one starts.
            print(f"--- settled in {settle():.1f} s", flush=True)
            print(f"--- benchmarks/{name}.py --size {args.size}", flush=True)
            done = subprocess.run(
                [sys.executable, "-m", f"benchmarks.{name}", "--size", args.size, "--out", out],
                cwd=ROOT,
            )
            if done.returncode == 0:
                sections.append(section_read(out))
            else:  # said in the report, and the other benchmarks still run
                sections.append(
                    Section(
                        title=f"benchmarks/{name}.py",
                        lines=[f"**Failed** (exit status {done.returncode}): see its output."],
                        results=[
                            Result(
                                name=f"benchmarks/{name}.py",
                                measured="failed",
                                target="runs",
                                meets=False,
                            )
                        ],
                    )
                )
    minutes = (time.perf_counter() - started) / 60
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    make = "make bench-full" if args.size == "full" else "make bench"
    only = f" --only {args.only}" if args.only else ""
    lines = [
        "# Benchmarks",
        "",
        f"Command: `{make}` (`benchmarks/run.py --size {args.size}{only}`) · commit "
        f"{commit or 'unknown'} · {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC · "
        f"{minutes:.1f} minutes in all",
        "",
        f"Machine: {machine_description()}",
        "",
        "Before each benchmark, and before a measure that follows a bulk write of its own (a "
        "database generated or copied, the report's million messages written), PostgreSQL "
        "checkpoints and the kernel syncs (`benchmarks.common:settle`): the measure does not "
        "share the disk and the cores with that write-back.",
        "",
        "## Targets",
        "",
        "| benchmark | measured | target | meets |",
        "|---|---:|---:|---|",
    ]
    for section in sections:
        for result in section.results:
            meets = {True: "yes", False: "**no**", None: "n/a"}[result.meets]
            lines.append(f"| {result.name} | {result.measured} | {result.target} | {meets} |")
    for section in sections:
        lines += ["", f"## {section.title}", "", *section.lines]
    lines.append("")
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
