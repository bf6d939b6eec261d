#!/usr/bin/env python3
"""Agent analysis: scenario accuracy, per-threat analysis time and throughput of one process.

Deterministic mode (no LLM), one process, SQLite in a temp folder (or, with `--postgres SERVER_URL`,
a scratch PostgreSQL database created and dropped here), migrated here; the real coordinator
including its database reads and the verdict write (`coordinator.analyze`):

1. every labelled scenario in tests/fixtures/scenarios/ (each in a rolled-back transaction):
   accuracy and analysis time;
2. `--threats` synthetic threats (seeded generator, all types, 8 catalogue customers, with 200
   past threats of which half are triaged, infra events and context items in place): analysed one
   after another; per-threat median / p95 and threats per second;
3. beside it, in the same process: a Celery no-op task and `agents.analyze_threat` on an
   already-analysed threat (the idempotent no-op path), both eager, as the floor of the task path.

Prints a summary and appends one JSON line to bench/results/bench_analysis.jsonl. `--profile FILE`
instead runs the throughput part under cProfile (coordinator thread: the agents' pool threads show
as the wait for their results) and writes its stats to FILE; the timings then include the
profiler's overhead, so nothing is appended.

    .venv/bin/python bench/bench_analysis.py [--threats 1000]      (or: make bench)
    .venv/bin/python bench/bench_analysis.py --postgres postgres://postgres@127.0.0.1:5432/postgres
"""

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
RESULTS = REPO_ROOT / "bench" / "results" / "bench_analysis.jsonl"


def setup_django(database_url):
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "socproject.settings", "DJANGO_DEBUG": "true",
        "DJANGO_SECRET_KEY": "bench-only-secret", "DATABASE_URL": database_url,
        "ENABLE_AUTO_THREAT_GENERATION": "false", "LOG_LEVEL": "WARNING",
    })
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "LLM_BASE_URL", "LLM_MODEL"):
        os.environ.pop(name, None)
    import django
    from django.core.management import call_command

    django.setup()
    from django.conf import settings

    settings.DEBUG = False  # no query log growing in memory
    call_command("migrate", verbosity=0)


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def ms(values):
    return {"median_ms": round(statistics.median(values), 2), "p95_ms": round(percentile(values, 0.95), 2),
            "max_ms": round(max(values), 2)}


def run_scenarios():
    from django.db import transaction

    from agents import coordinator, scenarios
    from threats.models import Threat

    passed, times, failures = 0, [], {}
    for scenario in scenarios.all_scenarios():
        with transaction.atomic():
            threat = scenarios.load(scenario)
            started = time.perf_counter()
            coordinator.analyze(threat.pk)
            times.append((time.perf_counter() - started) * 1000)
            problems = scenarios.check(scenario, Threat.objects.get(pk=threat.pk))
            transaction.set_rollback(True)
        if problems:
            failures[scenario.name] = problems
        else:
            passed += 1
    return {"scenarios": len(times), "passed": passed, "accuracy": round(passed / len(times), 4),
            "failures": failures, **ms(times)}


def seed(rng, now):
    from datetime import timedelta

    from threats import generator, services
    from threats.models import ContextItem, InfraEvent, Threat

    customers = [services.customer_for_name(name) for name in generator.CUSTOMER_CATALOGUE]
    dispositions = ["true_positive", "false_positive", "benign_true_positive", ""]
    for index in range(200):
        signal = generator.build_signal(rng=rng, now=now - timedelta(hours=rng.randint(1, 600)))
        disposition = dispositions[index % 4]
        Threat.objects.create(
            threat_type=signal.threat_type, title=signal.title, customer=services.customer_for_name(signal.customer_name),
            occurred_at=signal.occurred_at, received_at=signal.occurred_at, observables=signal.observables,
            raw={"metadata": signal.metadata}, analysis_status="completed", disposition=disposition,
            status="closed" if disposition else "new", closed_by_kind="human" if disposition else "",
        )
    for customer in customers:
        InfraEvent.objects.create(customer=customer, kind="deployment", service="api", description="release",
                                  started_at=now - timedelta(minutes=rng.randint(5, 50)))
        ContextItem.objects.create(customer=customer, kind="advisory", title="Credential stuffing wave",
                                   threat_types=["bot_traffic"], valid_from=now - timedelta(days=1))
    return customers


def run_throughput(count, rng, profiler=None, batch=1):
    from django.utils import timezone

    from agents import coordinator
    from threats import generator, services
    from threats.models import Threat

    now = timezone.now()
    seed(rng, now)
    ids = []
    for _ in range(count + 20):
        signal = generator.build_signal(rng=rng, now=now)
        ids.append(Threat.objects.create(
            threat_type=signal.threat_type, title=signal.title, customer=services.customer_for_name(signal.customer_name),
            occurred_at=signal.occurred_at, received_at=now, observables=signal.observables,
            raw={"metadata": signal.metadata}, mitre_hints=signal.mitre_hints,
        ).pk)
    for threat_id in ids[:20]:  # warm-up: tables loaded, pool threads started
        coordinator.analyze(threat_id)
    times, decide_times = [], []
    if profiler:
        profiler.enable()
    started, cpu_started = time.perf_counter(), time.process_time()
    for index in range(20, len(ids), batch):  # as the workers get them: a task per threat, or batched tasks
        tick = time.perf_counter()
        analysed = coordinator.analyze_many(ids[index:index + batch])
        times.extend([(time.perf_counter() - tick) * 1000 / len(analysed)] * len(analysed))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if profiler:
        profiler.disable()
    for threat in Threat.objects.select_related("customer").filter(pk__in=ids[20:220]):
        tick = time.perf_counter()
        coordinator.decide(threat)
        decide_times.append((time.perf_counter() - tick) * 1000)
    return ids, {"threats": len(times), "seconds": round(elapsed, 3),
                 "threats_per_second": round(len(times) / elapsed, 1), **ms(times),
                 # CPU seconds of this process (all its threads): what the machine's other load cannot inflate.
                 "cpu_ms_per_threat": round(cpu / len(times) * 1000, 2),
                 "threats_per_cpu_second": round(len(times) / cpu, 1),
                 "load_average_1min": os.getloadavg()[0],
                 "decide_only": {**ms(decide_times),
                                 "threats_per_second": round(len(decide_times) / (sum(decide_times) / 1000), 1)}}


def run_task_floor(ids, count):
    from celery import shared_task

    from agents import tasks
    from socproject.celery import app

    app.conf.task_always_eager = True

    @shared_task(name="bench.noop")
    def noop(value):
        return value

    rates = {}
    for name, call in (("celery_noop_task", lambda i: noop.delay(i)),
                       ("analyze_threat_noop", lambda i: tasks.analyze_threat.delay(str(ids[20 + i % (len(ids) - 20)])))):
        started = time.perf_counter()
        for index in range(count):
            call(index)
        rates[name + "_per_second"] = round(count / (time.perf_counter() - started), 1)
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threats", type=int, default=1000, help="threats analysed for throughput (default 1000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres", default="", help="PostgreSQL server URL: run on a scratch database there")
    parser.add_argument("--profile", default="", help="write cProfile stats of the throughput part to this file")
    parser.add_argument("--batch", type=int, default=1,
                        help="threats per analyze_many call, as in an analyze_threats task (default 1: a task per threat)")
    parser.add_argument("--no-record", action="store_true", help="do not append the JSON line (e.g. under py-spy)")
    args = parser.parse_args()
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    database = None
    with tempfile.TemporaryDirectory(prefix="bench-analysis-") as folder:
        if args.postgres:
            from tests.integration.server import create_postgres_database, drop_postgres_database

            database, database_url = create_postgres_database(args.postgres, "bench_analysis")
        else:
            database_url = f"sqlite:///{folder}/bench.sqlite3"
        try:
            setup_django(database_url)
            from agents.priority import attack

            scenario = run_scenarios()
            ids, throughput = run_throughput(args.threats, random.Random(args.seed), profiler, args.batch)
            floor = run_task_floor(ids, 2000)
        finally:
            if database:
                from django.db import connections

                connections.close_all()
                drop_postgres_database(args.postgres, database)
    if profiler:
        profiler.dump_stats(args.profile)
    line = {
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(), "python": platform.python_version(), "cpus": os.cpu_count(),
        "mode": f"deterministic, one process, {'PostgreSQL' if args.postgres else 'SQLite'}",
        "batch": args.batch,
        "attack_version": attack.version(), "commit": _commit(),
        "scenarios": scenario, "throughput": throughput, "task_floor": floor,
    }
    print(f"Scenarios: {scenario['passed']}/{scenario['scenarios']} passed (accuracy {scenario['accuracy']:.1%}); "
          f"analysis median {scenario['median_ms']} ms, p95 {scenario['p95_ms']} ms")
    for name, problems in scenario["failures"].items():
        print(f"  FAILED {name}: {'; '.join(problems)}")
    print(f"Throughput: {throughput['threats']} threats in {throughput['seconds']} s = "
          f"{throughput['threats_per_second']} threats/s; per threat median {throughput['median_ms']} ms, "
          f"p95 {throughput['p95_ms']} ms; CPU {throughput['cpu_ms_per_threat']} ms/threat = "
          f"{throughput['threats_per_cpu_second']} threats per CPU-second (load average {throughput['load_average_1min']:.1f})"
          f"\n  decide() alone: median {throughput['decide_only']['median_ms']} ms, "
          f"p95 {throughput['decide_only']['p95_ms']} ms = {throughput['decide_only']['threats_per_second']} threats/s "
          "without the verdict write")
    print(f"Task floor (eager, same process): Celery no-op {floor['celery_noop_task_per_second']}/s, "
          f"analyze_threat on an analysed threat {floor['analyze_threat_noop_per_second']}/s")
    if profiler:
        print(f"Profile of the throughput part in {args.profile} (timings above include its overhead; not recorded)")
    if profiler or args.no_record:
        return
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(line) + "\n")


def _commit():
    import subprocess

    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                           check=False)
    return found.stdout.strip()


if __name__ == "__main__":
    main()
