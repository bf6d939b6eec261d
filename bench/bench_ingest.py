#!/usr/bin/env python3
"""Alert ingestion throughput: POST /api/ingest/wazuh in batches of 500 to ONE real Daphne
process (tests/integration/server.py's EmbeddedServer: SQLite, in-memory channel layer).

Three honest scenarios, each on a fresh server:

- ingest only: the server is given a Celery broker (a private redis-server on a free port, no
  worker), so nothing is analysed in the web process; accepting a batch stores rows + events and
  publishes one Celery message per group head (the cost cluster mode pays);
- distinct alerts + analysis: embedded default, every alert heads its own group, so the five
  agents run in-process (2 analysis threads) for every alert while batches keep arriving; also
  reports how many analyses finished within --drain-seconds;
- repeated alerts + analysis: embedded default, alerts repeat 20 grouping keys (a noisy rule),
  so nearly all of them join a group and only the heads are analysed.

Prints a summary and appends one JSON line to bench/results/bench_ingest.jsonl.

    .venv/bin/python bench/bench_ingest.py [--batches 20] [--batch-size 500] [--clients 2]
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
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.integration.server import EmbeddedServer, free_port, login

RESULTS = REPO_ROOT / "bench" / "results" / "bench_ingest.jsonl"
TEMPLATE = json.loads((REPO_ROOT / "tests" / "fixtures" / "alerts" / "wazuh_alerts.ndjson").read_text().splitlines()[0])
TARGET = 1_000  # alerts/s
WARMUP = 20  # alerts posted before measuring


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20, help="measured batches per scenario (default 20)")
    parser.add_argument("--batch-size", type=int, default=500, help="alerts per POST (default 500)")
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients (default 2)")
    parser.add_argument("--drain-seconds", type=float, default=60,
                        help="how long to watch the in-process analyses after the last POST (default 60)")
    args = parser.parse_args()
    if args.batches < 1 or not 1 <= args.batch_size <= 1000 or args.clients < 1:
        parser.error("--batches >= 1, 1 <= --batch-size <= 1000, --clients >= 1")
    return args


class BrokerServer(EmbeddedServer):
    """The embedded server with a Celery broker and no worker: analysis is only enqueued."""

    def __init__(self, broker_url):
        super().__init__()
        self.broker_url = broker_url

    def _environment(self):
        return {**super()._environment(), "CELERY_BROKER_URL": self.broker_url}


def private_redis():
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False).stdout.strip() == "PONG":
            return process, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)  # waiting for a real process to bind its port
    process.terminate()
    raise RuntimeError("redis-server did not start")


def issue_key(server):
    code = ("from threats import apikeys; from threats.models import Customer; "
            "print(apikeys.issue('bench', ['ingest'], customer=Customer.objects.get(slug='retailmax'))[1])")
    done = subprocess.run([server.python, "manage.py", "shell", "-c", code], cwd=REPO_ROOT, env=server.env,
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip().splitlines()[-1]


def batch(number, size, keys):
    """`size` Wazuh alerts with unique ids; `keys` None = every alert its own grouping key."""
    alerts = []
    for n in range(size):
        serial = number * size + n
        key = serial if keys is None else serial % keys
        alert = json.loads(json.dumps(TEMPLATE))
        alert["id"] = f"1795162502.{serial}"
        alert["agent"] = {"id": f"{key % 1000:03d}", "name": f"web-{key:05d}", "ip": "10.0.1.15"}
        alert["data"] = {"srcip": f"203.0.{(key // 250) % 250}.{key % 250 + 1}", "srcport": str(40000 + n % 20000),
                         "srcuser": "admin"}
        alerts.append(alert)
    return json.dumps(alerts).encode()


def post(server, key, body):
    request = urllib.request.Request(f"{server.base_url}/api/ingest/wazuh", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "X-API-Key": key})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            answer = json.loads(response.read())
            status = response.status
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"ingest answered {exc.code}: {exc.read()[:500]}") from None
    if status != 202 or answer["errors"]:
        raise RuntimeError(f"ingest answered {status} with {answer['errors']} errors")
    return time.perf_counter() - started, answer


def analysed(session):
    """Threats with a verdict so far (the analytics' severity counts only analysed threats)."""
    return sum(session.get_json("/api/analytics")["by_severity"].values())


def cpu_seconds(pid):
    """User + system CPU time of a process so far (/proc/<pid>/stat), to read beside wall time on a
    shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scenario(name, server, args, keys, drain):
    key = issue_key(server)
    bodies = [batch(n, args.batch_size, keys) for n in range(1, args.batches + 1)]
    session = login(server.base_url)
    post(server, key, batch(0, WARMUP, keys))  # imports, connections, caches; the 20 repeated keys' groups
    deadline = time.monotonic() + 60
    while drain and analysed(session) < WARMUP and time.monotonic() < deadline:
        time.sleep(0.1)  # let the warm-up's analyses finish before measuring
    before = analysed(session) if drain else 0
    load, cpu, started = os.getloadavg()[0], cpu_seconds(server.pid), time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        answers = list(pool.map(lambda body: post(server, key, body), bodies))
    accepted_in, cpu_used = time.perf_counter() - started, cpu_seconds(server.pid) - cpu
    alerts = args.batches * args.batch_size
    heads = sum(sum(1 for i in answer["items"] if i.get("group_head")) for _, answer in answers)
    result = {
        "scenario": name, "alerts": alerts, "heads": heads, "seconds": round(accepted_in, 2),
        "accepted_per_s": round(alerts / accepted_in), "batch_ms": latency([t for t, _ in answers]),
        "server_cpu_ms_per_alert": round(cpu_used * 1000 / alerts, 3), "load_before": round(load, 2),
    }
    if drain:
        deadline = time.monotonic() + args.drain_seconds
        while analysed(session) - before < heads and time.monotonic() < deadline:
            time.sleep(0.2)  # waiting for the web process's analysis threads
        done, elapsed = analysed(session) - before, time.perf_counter() - started
        result.update(analysed=done, analysis_seconds=round(elapsed, 2), analysed_per_s=round(done / elapsed, 1),
                      backlog=heads - done)
    return result


def latency(seconds):
    ordered = sorted(s * 1000 for s in seconds)
    return {"median": round(statistics.median(ordered), 1), "p95": round(ordered[max(0, -(-95 * len(ordered) // 100) - 1)], 1),
            "max": round(ordered[-1], 1)}


def run(name, make_server, args, keys, drain):
    print(f"== {name}", flush=True)
    server = make_server()
    server.start()
    try:
        result = scenario(name, server, args, keys, drain)
    except BaseException:
        print(server.stderr_text()[-3000:], file=sys.stderr)
        raise
    finally:
        server.stop()
    line = (f"   {result['alerts']:,} alerts in {result['seconds']} s = {result['accepted_per_s']:,} alerts/s accepted "
            f"(batch of {args.batch_size}: median {result['batch_ms']['median']} ms, p95 {result['batch_ms']['p95']} ms); "
            f"{result['heads']:,} group heads; server CPU {result['server_cpu_ms_per_alert']} ms/alert "
            f"(load before {result['load_before']})")
    if drain:
        line += (f"; {result['analysed']:,} analysed {result['analysis_seconds']} s after the first POST "
                 f"({result['analysed_per_s']} analyses/s, {result['backlog']:,} still queued)")
    print(line, flush=True)
    return result


def main():
    args = parse_args()
    if not shutil.which("redis-server"):
        sys.exit("redis-server is needed for the ingest-only scenario (apt-get install redis-server)")
    redis, broker_url = private_redis()
    try:
        results = [run("ingest only: heads enqueued to a Celery broker, no worker", lambda: BrokerServer(broker_url),
                       args, keys=None, drain=False)]
    finally:
        redis.terminate()
        redis.wait(timeout=10)
    results.append(run("distinct alerts, analysed in-process", EmbeddedServer, args, keys=None, drain=True))
    results.append(run("repeated alerts (20 keys), heads analysed in-process", EmbeddedServer, args, keys=20, drain=True))
    record = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "batch_size": args.batch_size, "batches": args.batches, "clients": args.clients, "target_per_s": TARGET,
        "scenarios": results, "python": platform.python_version(), "node": platform.node(),
        "mode": "one embedded Daphne process, SQLite (WAL), in-memory channel layer",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(record) + "\n")
    print(f"appended to {RESULTS.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
