#!/usr/bin/env python3
"""`make bench`: run every benchmark, then write docs/benchmarks.md from what this run measured.

Each script prints its own summary and appends one JSON line to bench/results/<name>.jsonl; this
runner notes the machine, the versions and the load average around each script, and renders the
lines this run appended (nothing older) beside the targets and the ceilings measured in the same run.
With PEER_URL set (`make bench PEER_URL=http://127.0.0.1:8001`) the HTTP bench also measures that
running instance of the original system, alternating with this one, and the report gives the ratios.

    .venv/bin/python bench/run_all.py                       # everything (about 30-40 min), PostgreSQL if reachable
    .venv/bin/python bench/run_all.py --quick               # smoke: seconds per script, SQLite (CI)
    .venv/bin/python bench/run_all.py --only http,worker    # some of them
    .venv/bin/python bench/run_all.py --render-only         # docs/benchmarks.md from the newest lines

A script that fails is reported as failed in the document; the others still run.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench import report

RESULTS = REPO_ROOT / "bench" / "results"
RUNS = RESULTS / "runs.jsonl"  # one line per full `make bench`: machine info and what ran (no results)
POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"


def benches(quick, postgres):
    """(name, results file, command arguments) in the order they run."""
    pg = ["--postgres", postgres] if postgres else []
    return [
        ("latency", "trigger_latency.jsonl", ["bench/trigger_latency.py", "--runs", "5" if quick else "50"]),
        ("analysis", "bench_analysis.jsonl", ["bench/bench_analysis.py", "--threats", "50" if quick else "1000"]),
        ("worker", "worker.jsonl", ["bench/bench_worker.py", *(["--quick"] if quick else pg)]),
        ("ingest", "bench_ingest.jsonl", ["bench/bench_ingest.py", *(["--batches", "2", "--batch-size", "50",
                                                                      "--drain-seconds", "2"] if quick else [])]),
        # The 1M-threat database is kept between runs (`bench_http_1m`, ~6 GB; seeding takes ~6 min):
        # drop it with `psql -h 127.0.0.1 -U postgres -c 'DROP DATABASE bench_http_1m'`.
        # In cluster mode on a private Redis, as production runs (rate limits and the access cache there).
        ("http", "http.jsonl", ["bench/bench_http.py", "--redis", *(["--quick"] if quick else [
            "--threats", "1000000", *pg, *(["--database", "bench_http_1m"] if postgres else [])])]),
        ("threat_list", "threat_list.jsonl", ["bench/bench_threat_list.py", *(
            ["--rows", "2000", "--repeat", "1"] if quick else ["--rows", "1000000",
                                                               *(["--database-url", postgres] if postgres else [])])]),
        ("queue", "queue.jsonl", ["bench/bench_queue.py", *(
            ["--rows", "2000", "--recent", "200", "--repeat", "1"] if quick else ["--rows", "1000000",
                                                                                *(["--database-url", postgres] if postgres else [])])]),
        ("suppressions", "suppressions.jsonl", ["bench/bench_suppressions.py", *(
            ["--rows", "2000", "--repeat", "1", "--alerts", "200", "--runs", "1"] if quick else [
                "--rows", "1000000", *(["--database-url", postgres] if postgres else [])])]),
        ("stories", "stories.jsonl", ["bench/bench_stories.py", *(
            ["--rows", "2000", "--stitch", "20", "--repeat", "1"] if quick else [
                "--rows", "1000000", *(["--database-url", postgres] if postgres else [])])]),
        ("cluster", "cluster.jsonl", ["bench/bench_cluster.py", *(["--quick"] if quick else pg)]),
        ("dashboard", "dashboard.jsonl", ["bench/bench_dashboard.py", *(
            ["--threats", "50", "--loads", "2", "--runs", "3", "--warmup", "1"] if quick else [])]),
    ]


def postgres_reachable(url):
    try:
        import psycopg

        psycopg.connect(url, connect_timeout=2).close()
        return True
    except Exception:  # noqa: BLE001 - any failure means "use SQLite"
        return False


def line_count(path):
    return sum(1 for _ in path.open()) if path.exists() else 0


def run_one(name, filename, args, timeout):
    path = RESULTS / filename
    before, load_before, started = line_count(path), os.getloadavg(), time.monotonic()
    print(f"== {name}: {' '.join(args)}  (load {load_before[0]:.2f})", flush=True)
    try:
        code = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, timeout=timeout, check=False).returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    lines = path.read_text().splitlines()[before:] if path.exists() else []
    return {"name": name, "command": " ".join(args), "exit": code, "seconds": round(time.monotonic() - started, 1),
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
            "result": json.loads(lines[-1]) if lines and code == 0 else None}


def machine():
    def out(*command):
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "not available"

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), "0")
    import django

    return {
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "host": platform.node(),
        "kernel": platform.release(), "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(int(memory) / 2**20, 1),
        "python": platform.python_version(), "django": django.get_version(),
        "postgresql": out("psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SHOW server_version"),
        "redis": out("redis-server", "--version").split(" ")[2].removeprefix("v=") if shutil.which("redis-server") else "-",
        "wrk": "wrk " + out("wrk", "-v").split()[1] if shutil.which("wrk") else "-",
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated names: " + ", ".join(n for n, _, _ in benches(False, "")))
    parser.add_argument("--postgres", default=POSTGRES, help="Postgres server URL ('' = SQLite everywhere)")
    parser.add_argument("--out", default="", help="document to write (default docs/benchmarks.md; --quick: var/benchmarks-quick.md)")
    parser.add_argument("--render-only", action="store_true", help="no runs: render the newest line of every file")
    args = parser.parse_args()
    postgres = "" if args.quick or not args.postgres or not postgres_reachable(args.postgres) else args.postgres
    out = Path(args.out or (REPO_ROOT / ("var/benchmarks-quick.md" if args.quick else "docs/benchmarks.md")))
    chosen = set(filter(None, args.only.split(",")))
    info = machine()
    recorded = {}
    if args.render_only and RUNS.exists() and not args.quick:
        # Per script, the newest run that included it (a run may be `--only` some): its command,
        # time, load, date and machine. The header names the newest run's machine.
        records = [json.loads(line) for line in RUNS.read_text().splitlines()]
        info = records[-1]["info"]
        for record in records:
            for run in record["runs"]:
                recorded[run["name"]] = {**run, "at": record["info"]["at"], "cpu": record["info"]["cpu"]}
    runs = []
    for name, filename, command in benches(args.quick, postgres):
        if chosen and name not in chosen:
            continue
        if args.render_only:
            lines = (RESULTS / filename).read_text().splitlines() if (RESULTS / filename).exists() else []
            ran = recorded.get(name, {"command": "(earlier run)", "exit": 0 if lines else "no result", "seconds": None,
                                      "load_before": None, "load_after": None})
            runs.append({**ran, "name": name, "result": json.loads(lines[-1]) if lines else None})
            continue
        if name == "dashboard" and not Path("/usr/bin/chromium").exists():
            runs.append({"name": name, "command": "skipped: no /usr/bin/chromium", "exit": "skipped", "seconds": 0,
                         "load_before": None, "load_after": None, "result": None})
            continue
        runs.append({**run_one(name, filename, command, timeout=600 if args.quick else 5400),
                     "at": info["at"], "cpu": info["cpu"]})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.render(info, runs, quick=args.quick, postgres=bool(postgres or recorded)))
    if not args.render_only and not args.quick:
        with RUNS.open("a") as handle:  # so `--render-only` can re-render this run as it was
            handle.write(json.dumps({"info": info, "runs": [{k: v for k, v in run.items() if k != "result"}
                                                            for run in runs]}) + "\n")
    failed = [r["name"] for r in runs if r["exit"] not in (0, "skipped")]
    print(f"Wrote {out.relative_to(REPO_ROOT) if out.is_relative_to(REPO_ROOT) else out}"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
