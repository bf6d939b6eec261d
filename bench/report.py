"""docs/benchmarks.md from one `bench/run_all.py` run: targets first, then each benchmark's method
and numbers beside the ceiling measured in the same run. Missing results are said, not guessed."""



def render(info, runs, quick=False, postgres=False):
    by_name = {run["name"]: run for run in runs}
    parts = [_header(info, runs, quick, postgres), _targets(by_name), _runs_table(runs)]
    for name, section in SECTIONS:
        if name in by_name:
            parts.append(section(by_name[name]))
    return "\n\n".join(parts) + "\n"


def _result(run):
    return run["result"] if run and run.get("result") else None


def _fmt(value, unit="", digits=1):
    if value is None:
        return "—"
    if isinstance(value, float):
        value = round(value, digits)
    if isinstance(value, (int, float)) and abs(value) >= 10_000:
        value = f"{value:,}"
    return f"{value}{unit}"


def _header(info, runs, quick, postgres):
    loads = [r["load_before"][0] for r in runs if r.get("load_before")] + \
            [r["load_after"][0] for r in runs if r.get("load_after")]
    dates = {r["at"] for r in runs if r.get("at")}
    return "\n".join([
        "# Benchmarks",
        "",
        "Written by `make bench` (`bench/run_all.py`)" + (" in **smoke mode** (`--quick`: tiny sizes, not "
                                                           "comparable)" if quick else "") + f" on {info['at']}. "
        + ("Every number below was measured in that one run" if len(dates) <= 1 else
           f"The numbers come from {len(dates)} runs (`--only` some scripts; each script's run and CPU are in "
           "\"What ran\"; the machine below is the newest run's — compare numbers within one run)")
        + "; each script also appended its raw JSON line to "
        "`bench/results/<name>.jsonl`. The original system is compared only when measured in the same run "
        "by the same client (`make bench PEER_URL=http://…`), never with a figure taken on another machine.",
        "",
        "| Machine | |",
        "|---|---|",
        f"| CPU | {info['cpu']} ({info['cores']} cores), {info['memory_gib']} GiB |",
        (f"| Software | Linux {info['kernel']}, Python {info['python']}, Django {info['django']}, "
        f"PostgreSQL {info['postgresql']}, Redis {info['redis']}, {info['wrk']} |"),
        f"| Database for the scale runs | {'PostgreSQL (a fresh database per script)' if postgres else 'SQLite'} |",
        f"| 1-minute load average around the scripts | {min(loads):.2f} – {max(loads):.2f} "
        "(2 cores shared with other engineers' test runs: read rates as lower bounds) |" if loads else
        "| Load average | — |",
    ])


def _targets(by):
    http, cluster, worker, analysis = (_result(by.get(n)) for n in ("http", "cluster", "worker", "analysis"))
    rows = []
    if analysis:
        throughput = analysis["throughput"]
        rows.append(_row(f"Analysis ≥ 200 threats/s in one process, deterministic ({analysis['mode'].split(', ')[-1]}, "
                         "the real coordinator with its reads and writes, no broker)",
                         f"**{_fmt(throughput['threats_per_second'])}/s** ({throughput['cpu_ms_per_threat']} CPU-ms per "
                         f"threat, median {throughput['median_ms']} ms)", throughput["threats_per_second"] >= 200))
    if http:
        paths, ceiling = http["paths"], http["ceiling_rps"]
        listing, analytics = paths.get("list newest 20", {}), paths.get("analytics", {})
        peer = http.get("peer") or {}
        rows.append(_row("List newest 20: ≥ 70 % of the bare Django JSON view (`/health`) in the same run",
                         f"{_fmt(listing.get('rps'))} req/s = **{_fmt(100 * listing.get('rps', 0) / ceiling)} %** of "
                         f"`/health` ({_fmt(ceiling)} req/s){_versus(peer, 'list')}",
                         listing.get("rps", 0) >= 0.7 * ceiling))
        rows.append(_row("Analytics: ≥ 70 % of `/health` in the same run",
                         f"{_fmt(analytics.get('rps'))} req/s = **{_fmt(100 * analytics.get('rps', 0) / ceiling)} %** "
                         f"of `/health`{_versus(peer, 'analytics')}", analytics.get("rps", 0) >= 0.7 * ceiling))
        one = analytics.get("one_client", {})
        rows.append(_row(f"Analytics ≤ 200 ms at {http['threats']:,} threats ({http['database']})",
                         f"p50 {_fmt(one.get('p50_ms'), ' ms')}, p95 **{_fmt(one.get('p95_ms'), ' ms')}** (one client)",
                         (one.get("p95_ms") or 1e9) <= 200))
        reads = {k: v for k, v in paths.items() if k.startswith(("list", "detail", "event")) and "one_client" in v}
        worst = max(reads.items(), key=lambda item: item[1]["one_client"]["p95_ms"]) if reads else None
        if worst:
            rows.append(_row(f"List (filters, cursor), detail, event replay p95 ≤ 50 ms at {http['threats']:,} threats",
                             "one client, worst p95: **" + _fmt(worst[1]["one_client"]["p95_ms"], " ms") + f"** ({worst[0]})",
                             worst[1]["one_client"]["p95_ms"] <= 50))
        seeded = (_fmt(http["seed_seconds"], " s") if http.get("seed_seconds") is not None
                  else "the kept database of an earlier run (its time is in bench/results/http.jsonl)")
        rows.append(_row(f"`seed_scale --threats {http['threats']:,}`", f"{seeded} "
                         "(bulk COPY/INSERT in batches, progress bar)", True))
    if cluster:
        latency, fanout = cluster.get("latency", {}), cluster.get("fanout", {})
        rows.append(_row("Trigger on pod 0 → `threat.analyzed` on pod 1: p50 ≤ 25 ms",
                         f"p50 **{_fmt(latency.get('p50_ms'), ' ms')}**, p95 {_fmt(latency.get('p95_ms'), ' ms')}",
                         (latency.get("p50_ms") or 1e9) <= 25))
        rows.append(_row("1,000 WebSocket clients over 3 pods at 2 events/s: p95 ≤ 250 ms",
                         f"{fanout.get('clients')} clients: p95 **{_fmt(fanout.get('p95_ms'), ' ms')}**, missing before "
                         f"resume {fanout.get('missing_before_resume')}, after {fanout.get('missing_after_resume')}",
                         fanout.get("clients", 0) >= 1000 and (fanout.get("p95_ms") or 1e9) <= 250))
    if worker:
        analysis, noop = worker["analysis"], worker["celery_noop"]
        batched = worker.get("analysis_batched") or {}
        best = max(analysis["analyses_per_second"], batched.get("analyses_per_second", 0))
        rows.append(_row("Analysis ≥ 200 threats/s on one Celery worker process",
                         f"**{_fmt(analysis['analyses_per_second'])}/s** a task per threat"
                         + (f", **{_fmt(batched['analyses_per_second'])}/s** in tasks of {batched['batch_size']} (an "
                            "ingest batch)" if batched else "")
                         + f", beside a Celery no-op rate of {_fmt(noop['tasks_per_second'])}/s on the same process "
                         f"({worker['database']})", best >= 200))
    if not rows:
        return "## Targets\n\nNo result in this run."
    return "\n".join(["## Targets", "", "| Target | This run | Met |", "|---|---|---|", *rows])


def _row(target, reached, met):
    return f"| {target} | {reached} | {'yes' if met else '**no**'} |"


def _runs_table(runs):
    lines = ["## What ran", "", "| Script | Command | Exit | Seconds | Load before → after | Run of (UTC), CPU |",
             "|---|---|---|---|---|---|"]
    for run in runs:
        load = f"{run['load_before'][0]} → {run['load_after'][0]}" if run.get("load_before") else "—"
        when = f"{run['at'][:16].replace('T', ' ')}, {run['cpu']}" if run.get("at") else "—"
        lines.append(f"| {run['name']} | `{run['command']}` | {run['exit']} | {_fmt(run['seconds'])} | {load} | {when} |")
    return "\n".join(lines)


def _missing(title, run):
    return f"## {title}\n\nNo result in this run (exit {run['exit']})."


def _http(run):
    result = _result(run)
    if not result:
        return _missing("HTTP reads (wrk)", run)
    lines = [
        "## HTTP reads (wrk, one Daphne process)",
        "",
        (f"`bench/bench_http.py`: {result['method']}; {result['threats']:,} threats seeded by `seed_scale` on "
        f"{result['database']} " + (f"in {result['seed_seconds']} s" if result.get("seed_seconds") is not None
                                    else "by an earlier run (database kept and reused)")
        + ". `/health` is the ceiling: a bare Django JSON view "
        "through the same middleware on the same server, measured first and last. \"One client\" = one connection, "
        "one request at a time (no queueing). Load average before/after: "
        f"{result['load_average_before'][0]} / {result['load_average_after'][0]}."),
        "",
        "| Path | req/s (20 conn.) | vs ceiling | p50 / p95 / p99 (20 conn.) | one client p50 / p95 | non-2xx | bytes | server CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, p in result["paths"].items():
        one = p.get("one_client", {})
        lines.append(f"| {name} | {_fmt(p['rps'])} | {_fmt(100 * p['rps'] / result['ceiling_rps'])} % | "
                     f"{_fmt(p['p50_ms'])} / {_fmt(p['p95_ms'])} / {_fmt(p['p99_ms'])} ms | "
                     f"{_fmt(one.get('p50_ms'))} / {_fmt(one.get('p95_ms'))} ms | {p['non_2xx']} | "
                     f"{p['bytes_per_response']:,} | {p['server_cpu_pct']} % |")
    ratios, peer = result["ratios"], result.get("peer") or {}
    lines += ["", (f"Ratios to the ceiling measured in the same run: list {ratios['list_vs_ceiling']:.0%}, analytics "
              f"{ratios['analytics_vs_ceiling']:.0%}."
              + (f" The original system at {peer['url']}, measured alternately by the same client "
                 f"({peer['rounds']} rounds each): list {_versus(peer, 'list').strip(' ;')}, analytics "
                 f"{_versus(peer, 'analytics').strip(' ;')}." if peer else
                 " The original system was not measured in this run (`make bench PEER_URL=http://…` does)."))]
    return "\n".join(lines)


def _versus(peer, name):
    """'; N× the original system (ours / theirs req/s, same run)' when it was measured, else ''."""
    if not peer or name not in peer:
        return ""
    found = peer[name]
    ours, theirs = sorted(found["ours_rps"])[len(found["ours_rps"]) // 2], sorted(found["peer_rps"])[len(found["peer_rps"]) // 2]
    return f"; **{found['ratio']}×** the original system ({_fmt(ours)} / {_fmt(theirs)} req/s, alternating, same run)"


def _worker(run):
    result = _result(run)
    if not result:
        return _missing("Analysis on one worker process", run)
    rtt, noop, analysis = result["redis_publish_round_trip"], result["celery_noop"], result["analysis"]
    batched = result.get("analysis_batched")
    return "\n".join([
        "## Analysis on one Celery worker process",
        "",
        ("`bench/bench_worker.py`: a private Redis; `celery worker --concurrency 1` (one pool process, the project's "
        f"settings; pool: {result.get('pool', 'prefork')}); {result['database']}. Load average before/after: "
        f"{result['load_average_before'][0]} / {result['load_average_after'][0]}."),
        "",
        "| | |",
        "|---|---|",
        f"| Redis PUBLISH → subscriber round trip (1 KB, {rtt['messages']} messages) | p50 {rtt['p50_ms']} ms, p95 {rtt['p95_ms']} ms |",
        f"| Celery no-op task, {noop['tasks']} tasks | **{_fmt(noop['tasks_per_second'])} tasks/s** |",
        (f"| `agents.analyze_threat`, {analysis['threats']} queued threats (500 past threats of history) | "
        f"**{_fmt(analysis['analyses_per_second'])} threats/s** ({_fmt(100 * result['analysis_vs_noop'])} % of the no-op rate) |"),
        *([f"| `agents.analyze_threats`, {batched['threats']} more threats queued as an ingest batch is (tasks of "
           f"{batched['batch_size']}) | **{_fmt(batched['analyses_per_second'])} threats/s** |"] if batched else []),
    ])


def _analysis(run):
    result = _result(run)
    if not result:
        return _missing("Analysis in-process", run)
    s, t, f = result["scenarios"], result["throughput"], result["task_floor"]
    return "\n".join([
        "## Analysis in one process (no broker)",
        "",
        f"`bench/bench_analysis.py`: {result['mode']}; the real coordinator with its reads and the verdict write.",
        "",
        "| | |",
        "|---|---|",
        f"| Scenario suite | {s['passed']}/{s['scenarios']}, analysis median {s['median_ms']} ms, p95 {s['p95_ms']} ms |",
        (f"| {t['threats']} synthetic threats in a row | **{t['threats_per_second']} threats/s**, per threat median "
        f"{t['median_ms']} ms / p95 {t['p95_ms']} ms; {t.get('cpu_ms_per_threat')} CPU-ms per threat "
        f"(load {_fmt(t.get('load_average_1min'))}) |"),
        f"| `decide()` alone | median {t['decide_only']['median_ms']} ms = {t['decide_only']['threats_per_second']}/s |",
        (f"| Eager Celery no-op / `analyze_threat` on an analysed threat | {f['celery_noop_task_per_second']}/s / "
        f"{f['analyze_threat_noop_per_second']}/s |"),
    ])


def _latency(run):
    result = _result(run)
    if not result:
        return _missing("Trigger → WebSocket, one process", run)
    a, p = result["trigger_to_analyzed"], result["post"]
    return "\n".join([
        "## Trigger → `threat.analyzed`, one process",
        "",
        f"`bench/trigger_latency.py`: {result['mode']}; {result['runs']} triggers after {result['warmup']} warm-ups.",
        "",
        "| | median | p95 |",
        "|---|---|---|",
        f"| trigger → `threat.analyzed` on the socket | {a['median_ms']} ms | {a['p95_ms']} ms |",
        f"| POST alone | {p['median_ms']} ms | {p['p95_ms']} ms |",
    ])


def _ingest(run):
    result = _result(run)
    if not result:
        return _missing("Alert ingestion", run)
    lines = ["## Alert ingestion", "", (f"`bench/bench_ingest.py`: {result['mode']}; batches of {result['batch_size']} from "
             f"{result['clients']} clients."), "", "| Scenario | accepted/s | batch median / p95 | server CPU per alert |",
             "|---|---|---|---|"]
    for s in result["scenarios"]:
        lines.append(f"| {s['scenario']} | **{s['accepted_per_s']}** | {s['batch_ms']['median']} / {s['batch_ms']['p95']} ms | "
                     f"{s['server_cpu_ms_per_alert']} ms |")
    return "\n".join(lines)


def _cluster(run):
    result = _result(run)
    if not result:
        return _missing("Multi-pod real time", run)
    lat, fan = result["latency"], result["fanout"]
    lines = [
        "## Multi-pod real time (3 Daphne pods, Redis, one Celery worker)",
        "",
        f"`bench/bench_cluster.py`: {result['database']}{', quick' if result.get('quick') else ''}.",
        "",
        "| | |",
        "|---|---|",
        (f"| trigger on pod 0 → `threat.analyzed` on pod 1 ({lat['runs']} runs) | p50 **{lat['p50_ms']} ms**, p95 "
        f"{lat['p95_ms']} ms, max {lat['max_ms']} ms |"),
        (f"| {fan['clients']} clients over 3 pods at {fan['rate']} events/s for {fan['seconds']} s | {fan['frames']} frames, "
        f"p50 {fan['p50_ms']} ms, p95 **{fan['p95_ms']} ms**, missing before / after resume "
        f"{fan['missing_before_resume']} / {fan['missing_after_resume']} |"),
        "",
        "300 clients, rate steps (the app beside a bare Channels consumer on the same Daphne/Redis: the ceiling):",
        "",
        "| events/s | app p50 / p95 | app missing | bare p50 / p95 | bare missing |",
        "|---|---|---|---|---|",
    ]
    for app, bare in zip(result.get("app_steps", []), result.get("bare_steps", []), strict=False):
        lines.append(f"| {app['rate']} | {app['p50_ms']} / {app['p95_ms']} ms | {app['missing_before_resume']} | "
                     f"{bare['p50_ms']} / {bare['p95_ms']} ms | {bare['missing_before_resume']} |")
    lines += ["", (f"Highest rate with p95 ≤ 1 s and nothing missing: app {result.get('app_sustained_rate')} events/s, "
              f"bare {result.get('bare_sustained_rate')} events/s.")]
    return "\n".join(lines)


def _threat_list(run):
    result = _result(run)
    if not result:
        return _missing("The threats page at scale", run)
    lines = ["## The threats page at scale", "", (f"`bench/bench_threat_list.py`: {result['rows']:,} rows on "
             f"{result['database']}; `/threats/` rendered through Django's test client (query + template, 50 rows)."),
             "", "| Case | median | max |", "|---|---|---|"]
    for name, case in result["cases"].items():
        lines.append(f"| {name} | {case['median_ms']} ms | {case['max_ms']} ms |")
    return "\n".join(lines)


def _queue(run):
    result = _result(run)
    if not result:
        return _missing("My queue at scale", run)
    lines = ["## My queue at scale", "", (f"`bench/bench_queue.py`: {result['rows']:,} threats on {result['database']} "
             f"({result['recent']:,} received in the last 4 h); GET /api/queue and /queue/ through Django's test "
             "client ([docs/queue.md](queue.md)). Target: p95 ≤ 200 ms on PostgreSQL."),
             "", "| Case | median | p95 | max |", "|---|---|---|---|"]
    for name, case in result["cases"].items():
        lines.append(f"| {name} | {case['median_ms']} ms | {case['p95_ms']} ms | {case['max_ms']} ms |")
    contrast = result.get("naive_contrast")
    if contrast:
        lines += ["", f"For contrast, one query ranking every open threat: median {contrast['median_ms']} ms."]
    check = result.get("near_breach_check")
    if check:
        lines += ["", (f"Near-breach check (beat, `threats.warn_sla`): first run {check['first_run_ms']} ms "
                       f"({check['warned']} warned), later runs {check['later_run_median_ms']} ms.")]
    return "\n".join(lines)


def _suppressions(run):
    result = _result(run)
    if not result:
        return _missing("Suppression preview at scale", run)
    ingest = result["ingest"]
    lines = ["## Suppression preview at scale", "", (
        f"`bench/bench_suppressions.py`: {result['rows']:,} threats on {result['database']} within the last 60 days; "
        "POST /api/suppressions/preview through Django's test client ([docs/suppressions.md](suppressions.md)). "
        "Target: p95 ≤ 200 ms on PostgreSQL."), "", "| Case | median | p95 | max | would hide (TPs) |",
        "|---|---|---|---|---|"]
    for name, case in result["previews"].items():
        lines.append(f"| {name} | {case['median_ms']} ms | {case['p95_ms']} ms | {case['max_ms']} ms | "
                     f"{case['total']} ({case['true_positives']}) |")
    lines += ["", (f"Ingest ({ingest['alerts']} alerts per run, median of {ingest['runs']}): "
                   f"{ingest['ms_per_alert_0']} ms per alert with 0 live suppressions, {ingest['ms_per_alert_50']} ms "
                   f"with 50 ({ingest['overhead_percent']:+} %; target ≤ +5 %).")]
    return "\n".join(lines)


def _stories(run):
    result = _result(run)
    if not result:
        return _missing("Attack stories at scale", run)
    newest, late = result["stitch_newest"], result["stitch_late"]
    lines = ["## Attack stories at scale", "", (
        f"`bench/bench_stories.py`: {result['rows']:,} threats on {result['database']}, {result['stories']:,} stories "
        f"({result['flagged']:,} flagged), {result['links']:,} links ([docs/stories.md](stories.md)). Stitching per "
        f"analysed threat (3 stories each): median {newest['median_ms']} ms, p95 "
        f"{newest['p95_ms']} ms as the newest alert of its stories ({newest['threats']} threats, a transaction each)"
        + (f", median {result['stitch_batched']['median_ms']} ms in batches of {result['stitch_batched']['batch']}"
           if result.get("stitch_batched") else "") + "; median "
        f"{late['median_ms']} ms, p95 {late['p95_ms']} ms for an alert older than its stories' last (re-read). "
        "GET /api/stories and the pages through Django's test client:"),
        "", "| Case | median | p95 | max | rows |", "|---|---|---|---|---|"]
    for name, case in result["cases"].items():
        lines.append(f"| {name} | {case['median_ms']} ms | {case['p95_ms']} ms | {case['max_ms']} ms | {case['rows']} |")
    return "\n".join(lines)


def _dashboard(run):
    result = _result(run)
    if not result:
        return _missing("Dashboard in Chromium", run)
    lines = ["## Dashboard in Chromium", "", (f"`bench/bench_dashboard.py`: {result['threats']} threats, Chromium "
             f"{result.get('chromium')}."), "", "| Page | TTFB | live (socket connected) |", "|---|---|---|"]
    for page, numbers in result["first_load_ms"].items():
        lines.append(f"| `{page}` | {numbers['ttfb']['median']} ms | {numbers['live']['median']} ms |")
    trigger = result.get("trigger_ms", {})
    if trigger:
        lines += ["", (f"Trigger button → row visible: median {trigger['appeared']['median']} ms; → analysis visible: "
                  f"median {trigger['analysed']['median']} ms.")]
    return "\n".join(lines)


SECTIONS = [("http", _http), ("worker", _worker), ("analysis", _analysis), ("latency", _latency),
            ("cluster", _cluster), ("ingest", _ingest), ("threat_list", _threat_list), ("queue", _queue),
            ("suppressions", _suppressions), ("stories", _stories), ("dashboard", _dashboard)]
