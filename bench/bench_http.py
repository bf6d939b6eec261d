#!/usr/bin/env python3
"""HTTP read throughput of one web process, with its ceiling measured in the same run.

With `--peer-url` (or PEER_URL, e.g. `make bench PEER_URL=http://127.0.0.1:8001`) a running instance
of the original system is measured by the same client in the same run, alternating (ours, theirs,
three times) on the list and the analytics, and the ratios of the medians are printed; without it no
ratio to the original is printed or stored (a figure taken on another machine says nothing here).

The method of ../shared/reference/peer-bench.md: wrk, 20 connections, 2
threads, a 3 s warm-up then `--seconds` per path, on loopback, against ONE server process —
here one Daphne process (PostgreSQL with `--postgres`, else SQLite; `bench/bench_settings.py`:
the project's settings with the per-user rate limit lifted, the limiter still counting). The
database holds `--threats` threats from `manage.py seed_scale`. The analyst's session cookie
goes with every request.

Each path is also measured with one connection (one request at a time, no queueing): the
latency one analyst waits, which is what the "p95 <= 50 ms at a million threats" target means.

Paths: `/health` (the ceiling: a bare Django JSON view through the same middleware on the same
server, measured first and last), the list (newest 20; filters; a text search that matches
nothing, i.e. the worst case without an index; a page at the middle through its cursor), a detail page with its five agent runs, `/api/analytics`, and event replay
(`/api/events?after=<middle>`). Per path: requests/s, p50/p95/p99 (wrk's Lua `done` hook), non-2xx
count, response size, server CPU (the Daphne process's CPU time over the run, 100 % = one core).

Prints a table and appends one JSON line to bench/results/http.jsonl.

    .venv/bin/python bench/bench_http.py --postgres postgres://postgres@127.0.0.1:5432/postgres --threats 1000000
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.bench_ingest import private_redis
from tests.integration.server import EmbeddedServer, login

RESULTS = REPO_ROOT / "bench" / "results" / "http.jsonl"
REPORT = """
done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"requests\\": %d, \\"seconds\\": %.3f, \\"non2xx\\": %d, \\"errors\\": %d, "
    .. "\\"p50\\": %.3f, \\"p95\\": %.3f, \\"p99\\": %.3f, \\"max\\": %.3f, \\"bytes\\": %d}\\n",
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.bytes))
end
"""


class BenchServer(EmbeddedServer):
    """The embedded test server with the benchmark settings module. With `database` (PostgreSQL
    only) it uses that named database, creating it when missing, and keeps it afterwards."""

    def __init__(self, postgres_url=None, database=None, experiment=None, redis_url=""):
        # With Redis as in production (cluster mode): the rate limiter's counters and the access cache
        # live there; the channel layer too, though nothing here opens a socket.
        super().__init__(postgres_url=postgres_url, env={"REDIS_URL": redis_url} if redis_url else None)
        self.database = database
        self.experiment = experiment or {}

    def _environment(self):
        env = {**super()._environment(), "DJANGO_SETTINGS_MODULE": "bench.bench_settings", "LOG_LEVEL": "WARNING"}
        lines = []
        if self.experiment.get("no_access_cache"):
            env["ACCESS_CACHE_SECONDS"] = "0"  # the contrast: permissions and scope read on every request
        if self.experiment.get("no_db_pool"):
            env["DATABASE_POOL_MAX_SIZE"] = "0"  # the contrast: a new connection per request, as before the pool
        if self.experiment.get("cached_sessions"):
            lines.append('SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"')
        if lines:  # experiments: settings the project does not ship, in a module of this run's folder
            (self.tmp / "bench_experiment_settings.py").write_text(
                "from bench.bench_settings import *  # noqa: F403\n" + "\n".join(lines) + "\n")
            env.update(DJANGO_SETTINGS_MODULE="bench_experiment_settings",
                       PYTHONPATH=os.pathsep.join([str(self.tmp), str(REPO_ROOT)]))
        return env

    def _create_database(self):
        if not self.database:
            return super()._create_database()
        import psycopg

        parts = urllib.parse.urlsplit(self.postgres_url)
        with psycopg.connect(urllib.parse.urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.database]).fetchone():
                conn.execute(f'CREATE DATABASE "{self.database}"')
        return urllib.parse.urlunsplit(parts._replace(path="/" + self.database))

    def stored_threats(self):
        return int(self.manage("shell", "-c", "from threats.stats import stored_count; print(stored_count())")
                   .strip().splitlines()[-1])


def peak_rss_mib(pid):
    """The process's peak resident memory (VmHWM), MiB."""
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmHWM"))
    return round(int(line.split()[1]) / 1024, 1)


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url, cookie, seconds, connections, script, pid, threads=2, warmup=3):
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", script,
               "-H", f"Cookie: {cookie}", url]
    if warmup:
        subprocess.run([*command[:3], f"-d{warmup}s", *command[4:]], capture_output=True, check=True)
    cpu, started = cpu_seconds(pid) if pid else 0, time.monotonic()
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    busy = (cpu_seconds(pid) - cpu) / (time.monotonic() - started) if pid else None  # the peer's: not ours to read
    line = json.loads(next(x for x in out.splitlines() if x.startswith("JSON "))[5:])
    return {"rps": round(line["requests"] / line["seconds"], 1), "p50_ms": round(line["p50"], 2),
            "p95_ms": round(line["p95"], 2), "p99_ms": round(line["p99"], 2), "max_ms": round(line["max"], 2),
            "requests": line["requests"], "non_2xx": line["non2xx"], "socket_errors": line["errors"],
            "bytes_per_response": round(line["bytes"] / max(line["requests"], 1)),
            "server_cpu_pct": round(100 * busy, 1) if busy is not None else None}


PEER_PATHS = {"list": "/api/threats?limit=20", "analytics": "/api/analytics"}  # the same on both systems
PEER_ROUNDS = 3


def measure_peer(peer_url, server, cookie, seconds, connections, script):
    """Ours and the original system's, alternating on one machine with one client: medians and ratio."""
    found = {"url": peer_url, "rounds": PEER_ROUNDS}
    for name, path in PEER_PATHS.items():
        ours, theirs = [], []
        for _ in range(PEER_ROUNDS):
            ours.append(wrk(server.base_url + path, cookie, seconds, connections, script, server.pid)["rps"])
            theirs.append(wrk(peer_url.rstrip("/") + path, "", seconds, connections, script, None)["rps"])
        found[name] = {"ours_rps": ours, "peer_rps": theirs,
                       "ratio": round(statistics.median(ours) / max(statistics.median(theirs), 0.01), 2)}
        print(f"{name:40s} ours {statistics.median(ours):.1f} req/s, the original {statistics.median(theirs):.1f} req/s "
              f"(medians of {PEER_ROUNDS} alternating runs): {found[name]['ratio']}x", flush=True)
    return found


def one_client(url, cookie, seconds, script, pid):
    """Latency of one request at a time (one connection, no queueing): what a single analyst waits."""
    found = wrk(url, cookie, seconds, 1, script, pid, threads=1, warmup=0)
    return {"p50_ms": found["p50_ms"], "p95_ms": found["p95_ms"], "p99_ms": found["p99_ms"], "rps": found["rps"]}


def targets(server, session, threats):
    """The paths to measure, with ids, cursors and seqs taken from the seeded data."""
    newest = session.get_json("/api/threats?limit=1")["items"][0]["id"]
    middle_cursor = None
    if threats > 40:
        middle = server.manage("shell", "-c", (
            "from threats.models import Threat; from threats.paging import encode_cursor; "
            f"print(encode_cursor(Threat.objects.order_by('-received_at', '-id')[{threats // 2}]))")).strip()
        middle_cursor = middle.splitlines()[-1]
    latest = session.get_json("/api/events?after=0&limit=1")["latest_seq"]
    paths = {
        "ceiling /health": "/health",
        "list newest 20": "/api/threats?limit=20",
        "list severity=HIGH": "/api/threats?limit=20&severity=HIGH",
        "list status=new, customer": "/api/threats?limit=20&status=new&customer=retailmax",
        "list status=closed": "/api/threats?limit=20&status=closed",
        "list search q= (no match)": "/api/threats?limit=20&q=no+such+words",
        "detail (5 agent runs)": f"/api/threats/{newest}",
        "analytics": "/api/analytics",
        "event replay (100 after the middle)": f"/api/events?after={latest // 2}&limit=100",
    }
    if middle_cursor:
        paths["list page at the middle (cursor)"] = f"/api/threats?limit=20&cursor={middle_cursor}"
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threats", type=int, default=100_000)
    parser.add_argument("--postgres", default="", help="Postgres server URL (a fresh database is made and dropped)")
    parser.add_argument("--database", default="", help="with --postgres: use this database and keep it; it is "
                        "seeded only when empty, and reused as it is when it already holds --threats threats "
                        "(migrated first, so new indexes are built)")
    parser.add_argument("--no-db-pool", action="store_true", help="contrast, not the shipped settings: a new "
                        "PostgreSQL connection per request (DATABASE_POOL_MAX_SIZE=0) instead of the pool")
    parser.add_argument("--cached-sessions", action="store_true", help="experiment, not the shipped settings: "
                        "SESSION_ENGINE cached_db (sessions read from the cache, written through to the database)")
    parser.add_argument("--redis", action="store_true", help="run the server in cluster mode on a private "
                        "redis-server (as production does: rate limits and the access cache in Redis)")
    parser.add_argument("--no-access-cache", action="store_true", help="contrast, with --redis: "
                        "ACCESS_CACHE_SECONDS=0 (permissions and customer scope read on every request)")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 threats, 2 s per path")
    parser.add_argument("--peer-url", default=os.environ.get("PEER_URL", ""), help="a running instance of the "
                        "original system, measured alternately with this one (list, analytics); default $PEER_URL")
    args = parser.parse_args()
    if args.quick:
        args.threats, args.seconds = 2000, 2
    if not shutil.which("wrk"):
        sys.exit("bench_http needs wrk (Debian package `wrk`)")
    load_before = os.getloadavg()
    experiment = {name: True for name in ("no_db_pool", "cached_sessions", "no_access_cache", "redis")
                  if getattr(args, name)}
    if args.database and not args.postgres:
        sys.exit("--database needs --postgres")
    redis = private_redis() if args.redis else None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-http-") as folder, \
                BenchServer(postgres_url=args.postgres or None, database=args.database or None, experiment=experiment,
                            redis_url=redis[1] if redis else "") as server:
            started = time.monotonic()
            stored = server.stored_threats() if args.database else 0
            if stored and stored != args.threats:
                sys.exit(f"database {args.database} holds {stored} threats, not {args.threats}")
            if not stored:
                subprocess.run([sys.executable, "manage.py", "seed_scale", "--threats", str(args.threats), "--detailed",
                                str(min(args.threats, 10_000))], cwd=REPO_ROOT, env=server.env, check=True, timeout=3600)
            seed_seconds = round(time.monotonic() - started, 1) if not stored else None
            server._stop_daphne()  # a fresh process: nothing from the seeding in its caches
            server._start_daphne()
            session = login(server.base_url)
            script = Path(folder) / "report.lua"
            script.write_text(REPORT)
            results = {}
            for name, path in [*targets(server, session, args.threats).items(), ("ceiling /health (again)", "/health")]:
                results[name] = {"path": path, **wrk(server.base_url + path, session.cookie_header, args.seconds,
                                                      args.connections, str(script), server.pid),
                                 "one_client": one_client(server.base_url + path, session.cookie_header,
                                                          max(2, args.seconds // 3), str(script), server.pid)}
                peak_rss = peak_rss_mib(server.pid)
                print(f"{name:40s} {results[name]['rps']:8.1f} req/s  p50 {results[name]['p50_ms']:7.2f} ms  "
                      f"p95 {results[name]['p95_ms']:7.2f} ms  non-2xx {results[name]['non_2xx']}  "
                      f"server CPU {results[name]['server_cpu_pct']} %;  one client: p50 "
                      f"{results[name]['one_client']['p50_ms']} ms, p95 {results[name]['one_client']['p95_ms']} ms", flush=True)
            peer = measure_peer(args.peer_url, server, session.cookie_header, max(2, args.seconds // 3),
                                args.connections, str(script)) if args.peer_url else None
    finally:
        if redis:
            redis[0].terminate()
            redis[0].wait(timeout=10)
    ceiling = (results["ceiling /health"]["rps"] + results["ceiling /health (again)"]["rps"]) / 2
    ratios = {
        "list_vs_ceiling": round(results["list newest 20"]["rps"] / ceiling, 3),
        "analytics_vs_ceiling": round(results["analytics"]["rps"] / ceiling, 3),
    }
    if peer:
        ratios.update(list_vs_peer=peer["list"]["ratio"], analytics_vs_peer=peer["analytics"]["ratio"])
    print("ratios:", ratios)
    line = {
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "host": platform.node(),
        "python": platform.python_version(), "cpus": os.cpu_count(), "quick": args.quick,
        "database": "postgresql" if args.postgres else "sqlite", "threats": args.threats, "seed_seconds": seed_seconds,
        "reused_database": bool(args.database and seed_seconds is None), "experiment": experiment,
        "method": f"wrk -t2 -c{args.connections} -d{args.seconds}s after 3 s warm-up, one Daphne process, session cookie",
        "load_average_before": [round(x, 2) for x in load_before], "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "server_peak_rss_mib": peak_rss, "ceiling_rps": round(ceiling, 1), "peer": peer, "ratios": ratios, "paths": results,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
