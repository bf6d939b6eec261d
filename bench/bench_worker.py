#!/usr/bin/env python3
"""Analysis throughput of ONE Celery worker process, beside the floors measured in the same run.

Starts a private Redis (free port) and uses a fresh database (PostgreSQL with `--postgres`,
else SQLite), then:

1. Redis PUBLISH round trip: a subscriber and a publisher on loopback, `--messages` messages of
   the size of a real event (about 1 KB); p50/p95 from PUBLISH to receipt.
2. Celery no-op rate: `celery worker --concurrency 1` (one pool process, the project's settings:
   late ack, prefetch 1) runs `--noops` tasks that do nothing; tasks/s from the first publish to
   the last task's end.
3. Analysis, a task per threat: `--threats` stored, queued threats (generator, every type, the
   catalogue customers, with 500 past threats of analyst history, infrastructure events and
   context items), their `agents.analyze_threat` tasks published at once (what single triggers
   send); analyses/s from the first publish until every threat is `completed`, on the same single
   pool process. Threats are stored first (no enqueue), so only the workers' part is timed. A
   worker's task also analyses threats still queued (agents/tasks.py), whose own tasks then do
   nothing after the last verdict: the seconds until the broker's queue is empty are reported too.
4. Analysis, batched: as many more threats, queued the way an ingest batch queues them
   (`agents.tasks.enqueue_analyses`: `agents.analyze_threats` tasks of AGENTS_BATCH_SIZE).

Prints a summary and appends one JSON line to bench/results/worker.jsonl.

    .venv/bin/python bench/bench_worker.py --postgres postgres://postgres@127.0.0.1:5432/postgres
"""

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.integration.cluster import Process
from tests.integration.server import (
    create_postgres_database,
    drop_postgres_database,
    free_port,
)

RESULTS = REPO_ROOT / "bench" / "results" / "worker.jsonl"
TARGET = 200  # analyses/s on one worker process (the performance issue)
NOOP_TASK = "bench.noop"


def percentile(values, share):
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))], 3)


def publish_round_trip(redis_url, count):
    import redis

    payload = json.dumps({"type": "threat.analyzed", "seq": 1, "threat": {"title": "x" * 900}})
    subscriber, publisher = redis.Redis.from_url(redis_url), redis.Redis.from_url(redis_url)
    pubsub = subscriber.pubsub()
    pubsub.subscribe("bench:rtt")
    pubsub.get_message(timeout=2)  # the subscribe confirmation
    times = []
    for _ in range(count):
        started = time.perf_counter()
        publisher.publish("bench:rtt", payload)
        while pubsub.get_message(timeout=2) is None:
            pass
        times.append((time.perf_counter() - started) * 1000)
    pubsub.close()
    return {"messages": count, "p50_ms": percentile(times, 0.5), "p95_ms": percentile(times, 0.95),
            "mean_ms": round(statistics.mean(times), 3)}


def django_setup(env):
    os.environ.update(env)
    import django

    django.setup()


def seed_history(rng, now):
    from datetime import timedelta

    from threats import generator, services
    from threats.models import ContextItem, InfraEvent, Threat

    customers = [services.customer_for_name(name) for name in generator.CUSTOMER_CATALOGUE]
    dispositions = ["true_positive", "false_positive", "benign_true_positive", ""]
    past = []
    for index in range(500):
        signal = generator.build_signal(rng=rng, now=now - timedelta(hours=rng.randint(1, 600)))
        disposition = dispositions[index % 4]
        past.append(Threat(
            threat_type=signal.threat_type, title=signal.title, customer=services.customer_for_name(signal.customer_name),
            occurred_at=signal.occurred_at, received_at=signal.occurred_at, observables=signal.observables,
            raw={"metadata": signal.metadata}, analysis_status="completed", disposition=disposition,
            status="closed" if disposition else "new", closed_by_kind="human" if disposition else ""))
    Threat.objects.bulk_create(past)
    for customer in customers:
        InfraEvent.objects.create(customer=customer, kind="deployment", service="api", description="release",
                                  started_at=now - timedelta(minutes=rng.randint(5, 50)))
        ContextItem.objects.create(customer=customer, kind="advisory", title="Credential stuffing wave",
                                   threat_types=["bot_traffic"], valid_from=now - timedelta(days=1))


def queued_threats(count, rng, now):
    from threats import generator, services
    from threats.models import Threat

    fresh = []
    for _ in range(count):
        signal = generator.build_signal(rng=rng, now=now)
        fresh.append(Threat(threat_type=signal.threat_type, title=signal.title,
                            customer=services.customer_for_name(signal.customer_name), occurred_at=signal.occurred_at,
                            received_at=now, observables=signal.observables, raw={"metadata": signal.metadata},
                            mitre_hints=signal.mitre_hints))
    Threat.objects.bulk_create(fresh)
    return [str(t.pk) for t in fresh]


def wait_until(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)  # polling a real worker's progress
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default="")
    parser.add_argument("--threats", type=int, default=2000)
    parser.add_argument("--noops", type=int, default=5000)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 threats, 200 no-ops, 200 messages")
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads"],
                        help="prefork (the deployment's: one pool process) or threads (one process, --threads threads;"
                             " Celery enforces no time limits there)")
    parser.add_argument("--threads", type=int, default=2, help="threads of the threads pool (default 2)")
    args = parser.parse_args()
    if args.quick:
        args.threats, args.noops, args.messages = 100, 200, 200
    tmp = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    database = None
    if args.postgres:
        database, database_url = create_postgres_database(args.postgres, "bench_worker")
    else:
        database_url = f"sqlite:///{tmp}/worker.sqlite3"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
           "DJANGO_SETTINGS_MODULE": os.environ.get("BENCH_WORKER_SETTINGS", "socproject.settings"), "DJANGO_SECRET_KEY": "bench-worker-" + os.urandom(8).hex(),
           "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           "LOG_LEVEL": "WARNING", "ENABLE_AUTO_THREAT_GENERATION": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    redis_server = Process("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                     "--appendonly", "no", "--dir", str(tmp)], dict(os.environ), tmp).start()
    worker = None
    load_before = os.getloadavg()
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=REPO_ROOT, env=env, check=True)
        django_setup(env)
        import redis

        r = redis.Redis.from_url(redis_url)
        wait_until(lambda: _ping(r), 10)
        rtt = publish_round_trip(redis_url, args.messages)
        print(f"Redis PUBLISH round trip: p50 {rtt['p50_ms']} ms, p95 {rtt['p95_ms']} ms", flush=True)

        from django.utils import timezone

        rng, now = random.Random(7), timezone.now()
        seed_history(rng, now)
        ids = queued_threats(args.threats, rng, now)
        worker = Process("worker", [sys.executable, "-m", "celery", "-A", "socproject", "worker", "-l", "warning",
                                    "--pool", args.pool, "--concurrency", "1" if args.pool == "prefork" else str(args.threads),
                                    "--without-gossip", "--without-mingle",
                                    "--include", "bench.celery_noop", "-n", f"bench-{os.getpid()}@%h"], env, tmp).start()
        from socproject.celery import app

        wait_until(lambda: _worker_ready(app), 30, 0.2)
        noop = _noop_rate(app, r, args.noops)
        print(f"Celery no-op: {noop['tasks_per_second']} tasks/s on one worker process", flush=True)
        analysis = _analysis_rate(ids, lambda: [app.send_task("agents.analyze_threat", args=[i]) for i in ids])
        print(f"Analysis, a task per threat: {analysis['analyses_per_second']} threats/s on one worker process "
              f"({analysis['threats']} threats in {analysis['seconds']} s; every task taken at "
              f"{analysis['queue_drained_seconds']} s)", flush=True)
        from agents import tasks

        batched_ids = queued_threats(args.threats, rng, now)  # stored only now: see _analysis_rate
        print(f"Analysis, batched: {len(batched_ids)} threats stored, publishing their tasks", flush=True)
        batched = _analysis_rate(batched_ids, lambda: tasks._submit_all(batched_ids))
        batched["batch_size"] = settings_batch_size()
        analysis["worker_rss_mib"] = _rss_mib([worker.pid, *_children(worker.pid)])
        print(f"Analysis, tasks of {batched['batch_size']} threats (an ingest batch): {batched['analyses_per_second']}"
              f" threats/s on one worker process ({batched['threats']} threats in {batched['seconds']} s)", flush=True)
    finally:
        if worker is not None:
            worker.stop()
        redis_server.stop()
        if database:
            from django.db import connections

            connections.close_all()
            drop_postgres_database(args.postgres, database)
    line = {
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "host": platform.node(),
        "python": platform.python_version(), "cpus": os.cpu_count(), "quick": args.quick,
        "database": "postgresql" if args.postgres else "sqlite",
        "pool": args.pool if args.pool == "prefork" else f"threads ({args.threads})",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "redis_publish_round_trip": rtt, "celery_noop": noop, "analysis": analysis, "analysis_batched": batched,
        "target_per_second": TARGET,
        "analysis_vs_noop": round(analysis["analyses_per_second"] / noop["tasks_per_second"], 3),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(line) + "\n")


def _children(pid):
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    return [int(x) for x in found.split()]


def _rss_mib(pids):
    """Resident memory of the worker's main process and its pool process, MiB (summed)."""
    total = 0
    for pid in pids:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS"))
        total += int(line.split()[1])
    return round(total / 1024, 1)


def _ping(r):
    import redis

    try:
        return r.ping()
    except redis.ConnectionError:
        return False


def _worker_ready(app):
    return bool(app.control.ping(timeout=0.5))


def _noop_rate(app, r, count):
    r.delete("bench:noop:done")
    started = time.perf_counter()
    for index in range(count):
        app.send_task(NOOP_TASK, args=[index == count - 1])
    # One pool process takes the queue in order: when the last task ran, all did.
    if not wait_until(lambda: r.get("bench:noop:done"), 300, 0.01):
        raise RuntimeError("the no-op tasks did not finish")
    seconds = float(r.get("bench:noop:done")) - started_wall(started)
    return {"tasks": count, "seconds": round(seconds, 3), "tasks_per_second": round(count / seconds, 1)}


_clock_offset = time.time() - time.perf_counter()


def started_wall(perf):
    return perf + _clock_offset


def settings_batch_size():
    from django.conf import settings

    return settings.AGENTS_BATCH_SIZE


def _analysis_rate(ids, publish):
    from threats.models import Threat

    from django.db.models import Max

    from threats.choices import AnalysisStatus

    started = time.perf_counter()
    publish()
    # The only threats pending analysis in this private database are the ones measured, so "none
    # pending" is one look at the pending-analysis index. (Filtering on the thousands of ids every
    # 0.1 s took a quarter of a core from the two the worker and the database share.)
    pending = Threat.objects.filter(analysis_status__in=[AnalysisStatus.QUEUED, AnalysisStatus.RUNNING])
    if not wait_until(lambda: not pending.exists(), 600, 0.1):
        raise RuntimeError("the analyses did not finish")
    completed = Threat.objects.filter(pk__in=ids, analysis_status=AnalysisStatus.COMPLETED).count()
    if completed != len(ids):
        raise RuntimeError(f"{len(ids) - completed} of {len(ids)} analyses did not complete")

    last = Threat.objects.filter(pk__in=ids).aggregate(last=Max("analyzed_at"))["last"].timestamp()
    seconds = last - started_wall(started)
    # A task may analyse threats whose own tasks are still queued (agents/tasks.py): those tasks
    # then find nothing to do, after the last verdict. Until the broker's queue is empty (the last
    # task taken; one pool process, prefetch 1), the worker's whole time for these tasks.
    if not wait_until(lambda: _queue_length() == 0, 600, 0.05):
        raise RuntimeError("the tasks did not drain")
    drained = time.perf_counter() - started
    return {"threats": len(ids), "seconds": round(seconds, 3), "analyses_per_second": round(len(ids) / seconds, 1),
            "queue_drained_seconds": round(drained, 3)}


def _queue_length(clients={}):
    from django.conf import settings

    import redis

    client = clients.setdefault("broker", redis.Redis.from_url(settings.CELERY_BROKER_URL))
    return client.llen("celery")


if __name__ == "__main__":
    main()
