#!/usr/bin/env python3
"""Trigger -> threat.analyzed latency through a real embedded-mode Daphne process.

Starts its own server (SQLite in a temp folder, migrate, seed_demo --history 0, auto-generation
off), logs in through the login form, opens one WebSocket and, for each run, POSTs
/api/threats/trigger with a random threat_type and waits for that threat's `threat.analyzed`
frame. Prints each run and a summary, and appends one JSON line to bench/results/trigger_latency.jsonl.

    .venv/bin/python bench/trigger_latency.py --runs 50      (or: make latency)
"""

import argparse
import asyncio
import datetime
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import django
from websockets.asyncio.client import connect

from tests.integration.server import EmbeddedServer, login, trigger
from threats.choices import ThreatType

RESULTS = REPO_ROOT / "bench" / "results" / "trigger_latency.jsonl"
FRAME_TIMEOUT = 30  # seconds: a run that takes longer is a failure, not a data point


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50, help="measured runs (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured runs first (default 5)")
    parser.add_argument("--port", type=int, default=None, help="port for Daphne (default: a free one)")
    parser.add_argument("--keep-db", action="store_true", help="keep the temp folder with the SQLite database")
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")
    return args


async def wait_for_analyzed(ws, threat_id):
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))
        if frame.get("type") == "threat.analysis_failed" and frame["threat"]["id"] == threat_id:
            raise RuntimeError(f"analysis of {threat_id} failed: {frame.get('error')}")
        if frame.get("type") == "threat.analyzed" and frame["threat"]["id"] == threat_id:
            return frame


async def measure(server, session, runs, warmup):
    rng = random.Random()
    samples = []
    async with connect(server.ws_url, additional_headers={"Cookie": session.cookie_header},
                       origin=server.base_url, open_timeout=FRAME_TIMEOUT) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))
        assert hello["type"] == "hello", hello
        await ws.send(json.dumps({"type": "ping"}))  # also starts streaming without the 0.5 s grace
        pong = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))
        assert pong["type"] == "pong", pong
        for index in range(warmup + runs):
            threat_type = rng.choice(ThreatType.values)
            t0 = time.perf_counter()
            created = await asyncio.to_thread(trigger, session, threat_type=threat_type)
            t_post = time.perf_counter()
            frame = await wait_for_analyzed(ws, created["id"])
            t_done = time.perf_counter()
            measured = index >= warmup
            label = f"run {index - warmup + 1:3d}" if measured else f"warmup {index + 1}"
            total_ms, post_ms = (t_done - t0) * 1000, (t_post - t0) * 1000
            print(f"{label:>10}  {threat_type:<18} {frame['threat']['severity']:<8} "
                  f"post {post_ms:7.1f} ms   trigger->analyzed {total_ms:7.1f} ms", flush=True)
            if measured:
                samples.append((total_ms, post_ms))
    return samples


def summary(values):
    ordered = sorted(values)
    p95_index = max(0, -(-95 * len(ordered) // 100) - 1)  # nearest-rank percentile
    return {
        "median_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[p95_index], 1),
        "min_ms": round(ordered[0], 1),
        "max_ms": round(ordered[-1], 1),
    }


def main():
    args = parse_args()
    server = EmbeddedServer(port=args.port, keep_db=args.keep_db)
    print(f"starting daphne on {server.base_url} ...", flush=True)
    server.start()
    try:
        print(f"daphne pid {server.pid}, data in {server.tmp}", flush=True)
        session = login(server.base_url)
        samples = asyncio.run(measure(server, session, args.runs, args.warmup))
    except BaseException:
        print(server.stderr_text()[-5000:], file=sys.stderr)
        raise
    finally:
        server.stop()
        if args.keep_db:
            print(f"kept {server.tmp}")

    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "runs": args.runs,
        "warmup": args.warmup,
        "trigger_to_analyzed": summary([total for total, _ in samples]),
        "post": summary([post for _, post in samples]),
        "python": platform.python_version(),
        "django": django.get_version(),
        "node": platform.node(),
        "mode": "embedded (daphne, SQLite, in-memory channel layer, analysis thread)",
    }
    print()
    for name in ("trigger_to_analyzed", "post"):
        s = result[name]
        print(f"{name:>20}: median {s['median_ms']:.1f} ms  p95 {s['p95_ms']:.1f} ms  "
              f"min {s['min_ms']:.1f} ms  max {s['max_ms']:.1f} ms  (n={args.runs})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(result) + "\n")
    print(f"appended to {RESULTS.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
