"""Multi-pod real-time benchmark on this machine (docs/cluster.md).

Starts the cluster harness (private Redis, 3 Daphne pods, a Celery worker; SQLite or, with
--postgres, a fresh Postgres database) and measures:

1. latency: trigger over pod 0's API -> `threat.analyzed` on a client of pod 1 (p50/p95);
2. fan-out: N clients spread over the 3 pods while stored events arrive at R/s (each a real
   triage change through the service layer); delivery latency from the event's commit time, and
   missing events per client before and after a heartbeat resume;
3. the highest sustained rate for 300 clients, stepping R up, beside the same steps on a bare
   Channels consumer (no auth, no database, no ordering) on the same Daphne/Redis: the ceiling.

Results: printed, and one JSON line appended to bench/results/cluster.jsonl.
"""

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import websockets

from tests.integration.cluster import Cluster, Process
from tests.integration.server import free_port, login, trigger

RESULTS = ROOT / "bench" / "results" / "cluster.jsonl"
SUSTAINED_P95_MS = 1000


def pct(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)


class Listener:
    """One WebSocket client that records, per event seq, its delivery latency."""

    retries = 0  # handshakes retried, over all listeners

    def __init__(self, url, headers, seq_key="seq"):
        self.url, self.headers, self.seq_key = url, headers, seq_key
        self.latency_ms, self.seqs, self.ws = [], [], None

    async def open(self, ping=True, attempts=5):
        """Connect like the dashboard does: a refused or dropped handshake (Daphne closes one the
        application has not accepted within 5 s, e.g. under a burst of joins) is retried after a
        jittered backoff; the retries are counted and reported."""
        for attempt in range(attempts):
            try:
                self.ws = await websockets.connect(self.url, additional_headers=self.headers, max_size=None,
                                                   open_timeout=60, ping_interval=None)
                break
            except (OSError, websockets.exceptions.InvalidHandshake, websockets.exceptions.InvalidMessage):
                if attempt == attempts - 1:
                    raise
                Listener.retries += 1
                await asyncio.sleep(random.uniform(0, 0.5 * 2 ** attempt))
        if ping:
            hello = json.loads(await self.ws.recv())
            self.start = hello["seq"]
            await self.ws.send(json.dumps({"type": "ping"}))
            await self.ws.recv()  # pong: streaming from now on

    async def listen(self, stop):
        while not stop.is_set():
            try:
                frame = json.loads(await asyncio.wait_for(self.ws.recv(), 0.5))
            except TimeoutError:
                continue
            if "at" in frame and self.seq_key in frame:
                at = frame["at"]
                sent = at if isinstance(at, float) else datetime.fromisoformat(at).timestamp()
                self.latency_ms.append((time.time() - sent) * 1000)
                self.seqs.append(frame[self.seq_key])

    async def resume(self):
        """Heartbeat: the server sends what the pushes missed, then pong."""
        await self.ws.send(json.dumps({"type": "ping"}))
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if frame.get("type") == "pong":
                return
            self.seqs.append(frame["seq"])


async def open_all(listeners, ping=True, batch=50):
    for index in range(0, len(listeners), batch):
        await asyncio.gather(*(listener.open(ping) for listener in listeners[index:index + batch]))


def produce(cluster, rate, duration, bare=False, bare_redis=None):
    env = dict(cluster.env)
    args = [sys.executable, str(ROOT / "bench" / "event_producer.py"), "--rate", str(rate), "--duration", str(duration)]
    if bare:
        env["BARE_REDIS_URL"] = bare_redis
        args.append("--bare")
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=duration * 5 + 60, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


async def fanout_round(cluster, listeners, rate, duration, bare=False, bare_redis=None):
    stop = asyncio.Event()
    for listener in listeners:
        listener.latency_ms, listener.seqs = [], []
    tasks = [asyncio.create_task(listener.listen(stop)) for listener in listeners]
    produced = await asyncio.to_thread(produce, cluster, rate, duration, bare, bare_redis)
    await asyncio.sleep(2)  # drain: frames still in flight when the producer stops
    stop.set()
    await asyncio.gather(*tasks)
    expected = produced["produced"]
    got = [len(set(listener.seqs)) for listener in listeners]
    missing_before = sum(expected - n for n in got)
    missing_after = None
    if not bare:
        await asyncio.gather(*(listener.resume() for listener in listeners))
        missing_after = sum(expected - len(set(listener.seqs))
                            for listener in listeners)
    latencies = [v for listener in listeners for v in listener.latency_ms]
    return {
        "clients": len(listeners), "rate": rate, "seconds": duration, "events": expected,
        "frames": len(latencies), "p50_ms": pct(latencies, 0.5), "p95_ms": pct(latencies, 0.95),
        "max_ms": pct(latencies, 1.0), "missing_before_resume": missing_before,
        "missing_after_resume": missing_after,
    }


def latency_runs(cluster, runs, warmup):
    sender = login(cluster.pod_url(0))
    watcher = login(cluster.pod_url(1))

    async def run():
        client = Listener(cluster.pod_ws(1), {"Cookie": watcher.cookie_header, "Origin": cluster.pod_url(1)})
        await client.open()
        samples = []
        for index in range(warmup + runs):
            started = time.perf_counter()
            created = await asyncio.to_thread(trigger, sender, threat_type="bot_traffic")
            while True:
                frame = json.loads(await asyncio.wait_for(client.ws.recv(), 30))
                if frame.get("type") == "threat.analyzed" and frame["threat"]["id"] == created["id"]:
                    break
            if index >= warmup:
                samples.append((time.perf_counter() - started) * 1000)
        await client.ws.close()
        return samples

    samples = asyncio.run(run())
    return {"runs": runs, "p50_ms": pct(samples, 0.5), "p95_ms": pct(samples, 0.95), "max_ms": pct(samples, 1.0),
            "mean_ms": round(statistics.mean(samples), 1)}


def spread(cluster, session, count):
    return [Listener(cluster.pod_ws(i % 3), {"Cookie": session.cookie_header, "Origin": cluster.pod_url(i % 3)})
            for i in range(count)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rates", default="2,5,10,20,40", help="steps for the 300-client ceiling search")
    parser.add_argument("--postgres", help="Postgres server URL, e.g. postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few runs, few clients, short steps")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.warmup, args.clients, args.seconds, args.rates = 5, 1, 60, 3, "2,10"
    rates = [float(r) for r in args.rates.split(",")]
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "node": platform.node(),
              "python": platform.python_version(), "quick": args.quick,
              "database": "postgres" if args.postgres else "sqlite"}

    # Every listener uses one analyst's session: lift the per-user socket cap (docs/security.md) above them.
    with Cluster(pods=3, beat=False, nginx=False, postgres_url=args.postgres, worker_concurrency=2,
                 env={"WS_MAX_SOCKETS_PER_USER": str(max(300, args.clients))}) as cluster:
        result["latency"] = latency_runs(cluster, args.runs, args.warmup)
        print("trigger on pod 0 -> threat.analyzed on pod 1:", result["latency"], flush=True)
        session = login(cluster.pod_url(0))

        async def fanout():
            listeners = spread(cluster, session, args.clients)
            await open_all(listeners)
            big = await fanout_round(cluster, listeners, 2, args.seconds)
            await asyncio.gather(*(listener.ws.close() for listener in listeners))
            return big

        result["fanout"] = asyncio.run(fanout())
        result["fanout"]["handshake_retries"] = Listener.retries
        print(f"{args.clients} clients at 2 events/s:", result["fanout"], flush=True)
        # Sizing the chart's resources (docs/performance.md): peak memory of each pod after serving
        # its share of the clients, and of the worker (main process + pool processes) after analysing.
        result["memory_mib"] = {
            "pods_peak": [_status_mib(pod.pid, "VmHWM") for pod in cluster.pods],
            "worker_main_peak": _status_mib(cluster.worker.pid, "VmHWM"),
            "worker_pool_peak": [_status_mib(pid, "VmHWM") for pid in cluster.worker_children()],
        }
        print("memory (MiB):", result["memory_mib"], flush=True)

        async def steps(bare, redis_url=None, ports=None):
            if bare:
                listeners = [Listener(f"ws://127.0.0.1:{ports[i % 3]}/ws", {}) for i in range(300)]
                await open_all(listeners, ping=False)
            else:
                listeners = spread(cluster, session, 300)
                await open_all(listeners)
            rounds = []
            for rate in rates:
                rounds.append(await fanout_round(cluster, listeners, rate, args.seconds, bare, redis_url))
                print(("bare " if bare else "app  ") + "300 clients:", rounds[-1], flush=True)
            await asyncio.gather(*(listener.ws.close() for listener in listeners))
            return rounds

        result["app_steps"] = asyncio.run(steps(False))
        bare_ports = [free_port() for _ in range(3)]
        env = dict(cluster.env, BARE_REDIS_URL=cluster.redis_url)
        bare_pods = [Process(f"bare-{i}", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                           "bench.bare_fanout_app:application"], env, cluster.tmp).start()
                     for i, port in enumerate(bare_ports)]
        try:
            for port, process in zip(bare_ports, bare_pods, strict=True):
                _wait_port(port, process)
            result["bare_steps"] = asyncio.run(steps(True, cluster.redis_url, bare_ports))
        finally:
            for process in bare_pods:
                process.stop()

    result["app_sustained_rate"] = _sustained(result["app_steps"])
    result["bare_sustained_rate"] = _sustained(result["bare_steps"])
    print("highest sustained rate for 300 clients: app", result["app_sustained_rate"], "events/s; bare",
          result["bare_sustained_rate"], "events/s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as handle:
        handle.write(json.dumps(result) + "\n")


def _status_mib(pid, field):
    """One memory figure (VmHWM: peak resident, VmRSS: resident) of a process, MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _sustained(rounds):
    ok = [r["rate"] for r in rounds if r["p95_ms"] is not None and r["p95_ms"] <= SUSTAINED_P95_MS
          and r["missing_before_resume"] == 0]
    return max(ok) if ok else None


def _wait_port(port, process):
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(process.log_tail())
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)  # waiting for a real process to bind its port
    raise RuntimeError(f"bare pod on {port} did not start")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
