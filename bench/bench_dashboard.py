#!/usr/bin/env python3
"""The dashboard in a real browser: first load with N stored threats, and trigger -> visible.

Starts its own embedded-mode server (tests/integration/server.py: SQLite in a temp folder, Daphne on
a free port), stores `--threats` analysed threats with `seed_demo --history` (two thirds of them
triaged, as `make run` shows them), and drives Debian's Chromium with Playwright:

- first load: a fresh page (logged-in session, empty cache) opens `/` (and `/threats/`) `--loads`
  times; reported from Navigation Timing: time to first byte, DOMContentLoaded, load, and until the
  WebSocket is connected (the badge turns "connected": the page is live).
- trigger -> visible: on the open overview, each run clicks a trigger button (random type) and waits,
  in the page, for the new row to appear in the live feed (the `threat.created` event) and for it to
  show the analysis (`threat.analyzed`), timed with performance.now().

Prints a summary and appends one JSON line to bench/results/dashboard.jsonl.

    .venv/bin/python bench/bench_dashboard.py --threats 1000 --loads 10 --runs 30
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from playwright.sync_api import sync_playwright

from tests.integration.server import PASSWORD, USERNAME, EmbeddedServer

RESULTS = REPO_ROOT / "bench" / "results" / "dashboard.jsonl"
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]

# Records when the connection badge first says "connected" (an init script runs before the page's own).
MARK_CONNECTED = """
new MutationObserver((_, observer) => {
  const badge = document.getElementById("connection");
  if (badge && badge.dataset.state === "connected") { window.__connectedAt = performance.now(); observer.disconnect(); }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-state"], childList: true});
"""

TRIGGER_AND_WATCH = """
async (selector) => {
  const button = document.querySelector(selector);
  while (button.disabled) await new Promise(r => setTimeout(r, 5));  // the previous POST's answer
  return await new Promise((resolve, reject) => {
  const feed = document.getElementById("feed");
  const known = new Set([...feed.querySelectorAll("tr.threat-row")].map(r => r.dataset.id));
  let appeared = null;
  const started = performance.now();
  const observer = new MutationObserver(() => {
    const row = [...feed.querySelectorAll("tr.threat-row")].find(r => !known.has(r.dataset.id));
    if (!row) return;
    if (appeared === null) appeared = performance.now() - started;
    if (row.lastElementChild.textContent === "Completed") {
      observer.disconnect();
      resolve({appeared, analysed: performance.now() - started});
    }
  });
  observer.observe(feed, {childList: true, subtree: true, characterData: true});
  setTimeout(() => reject(new Error(appeared === null ? "no new row within 30 s" : "no analysis within 30 s")), 30000);
  button.click();
  });
}
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threats", type=int, default=1000, help="stored threats before measuring (default 1000)")
    parser.add_argument("--loads", type=int, default=10, help="first loads per page (default 10)")
    parser.add_argument("--runs", type=int, default=30, help="trigger -> visible runs (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured loads and triggers first (default 3)")
    args = parser.parse_args()
    if min(args.threats, args.loads, args.runs) < 1 or args.warmup < 0:
        parser.error("--threats, --loads and --runs must be at least 1, --warmup at least 0")
    return args


def summary(values):
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median": round(statistics.median(ordered), 1), "p95": round(p95, 1),
            "min": round(ordered[0], 1), "max": round(ordered[-1], 1)}


def log_in(browser, server):
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.base_url + "/accounts/login/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#connection[data-state=connected]")
    state = context.storage_state()
    context.close()
    return state


def first_load(browser, server, state, path, context=None):
    """One page load; in a fresh context (empty cache) unless `context` (assets cached) is given."""
    fresh = context is None
    if fresh:
        context = browser.new_context(storage_state=state, viewport={"width": 1440, "height": 1000})
        context.add_init_script(MARK_CONNECTED)
    page = context.new_page()
    response = page.goto(server.base_url + path)
    page.wait_for_function("() => window.__connectedAt !== undefined", timeout=30000)
    timing = page.evaluate("""() => {
        const n = performance.getEntriesByType("navigation")[0];
        return {ttfb: n.responseStart - n.startTime, dom_content_loaded: n.domContentLoadedEventEnd - n.startTime,
                load: n.loadEventEnd - n.startTime, live: window.__connectedAt, html_bytes: n.transferSize,
                rows: document.querySelectorAll("tr.threat-row").length};
    }""")
    assert response.status == 200, response.status
    if fresh:
        context.close()
    else:
        page.close()
    return timing


def measure_loads(browser, server, state, path, loads, warmup, cached=False):
    context = None
    if cached:  # an analyst's next visit: same browser, static files in its cache
        context = browser.new_context(storage_state=state, viewport={"width": 1440, "height": 1000})
        context.add_init_script(MARK_CONNECTED)
    for _ in range(max(warmup, 1 if cached else 0)):
        first_load(browser, server, state, path, context)
    samples = [first_load(browser, server, state, path, context) for _ in range(loads)]
    if context is not None:
        context.close()
    result = {key: summary([s[key] for s in samples]) for key in ("ttfb", "dom_content_loaded", "load", "live")}
    result["html_kb"] = round(samples[-1]["html_bytes"] / 1024, 1)
    result["rows"] = samples[-1]["rows"]
    return result


def measure_triggers(browser, server, state, runs, warmup):
    context = browser.new_context(storage_state=state, viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.goto(server.base_url + "/")
    page.wait_for_selector("#connection[data-state=connected]")
    samples = []
    for index in range(warmup + runs):
        sample = page.evaluate(TRIGGER_AND_WATCH, 'button[data-random="true"]')
        if index >= warmup:
            samples.append(sample)
            print(f"  run {index - warmup + 1:3}: row visible {sample['appeared']:7.1f} ms, "
                  f"analysed {sample['analysed']:7.1f} ms")
    context.close()
    return {"appeared": summary([s["appeared"] for s in samples]),
            "analysed": summary([s["analysed"] for s in samples])}


def main():
    args = parse_args()
    load_before = os.getloadavg()[0]
    server = EmbeddedServer(collect_static=True).start()
    try:
        started = time.monotonic()
        server.manage("seed_demo", "--insecure-demo-login", "--history", str(args.threats))
        print(f"stored {args.threats} analysed threats in {time.monotonic() - started:.0f} s")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            state = log_in(browser, server)
            loads = {path: measure_loads(browser, server, state, path, args.loads, args.warmup)
                     for path in ("/", "/threats/")}
            loads["/ (static files cached)"] = measure_loads(browser, server, state, "/", args.loads, args.warmup,
                                                             cached=True)
            triggers = measure_triggers(browser, server, state, args.runs, args.warmup)
            version = browser.version
            browser.close()
    finally:
        server.stop()

    for path, result in loads.items():
        print(f"load of {path} with {args.threats} threats ({result['rows']} rows, {result['html_kb']} KB HTML):")
        for key in ("ttfb", "dom_content_loaded", "load", "live"):
            s = result[key]
            print(f"  {key:20} median {s['median']:7.1f} ms  p95 {s['p95']:7.1f}  min {s['min']:7.1f}  max {s['max']:7.1f}")
    for key, label in (("appeared", "trigger -> row visible"), ("analysed", "trigger -> analysis visible")):
        s = triggers[key]
        print(f"{label:28} median {s['median']:7.1f} ms  p95 {s['p95']:7.1f}  min {s['min']:7.1f}  max {s['max']:7.1f}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    line = {"at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": platform.node(), "python": platform.python_version(), "chromium": version,
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # 1-min, before and after
            "threats": args.threats, "loads": args.loads, "runs": args.runs,
            "first_load_ms": loads, "trigger_ms": triggers}
    with RESULTS.open("a") as handle:
        handle.write(json.dumps(line) + "\n")
    print(f"machine load (1-min average) {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"appended to {RESULTS.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
