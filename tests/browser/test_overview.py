"""The overview in a real browser: trigger buttons, threats appearing live, figures kept current
from events alone (compared with what a fresh page load computes), severity colours, local times."""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from tests.browser.conftest import (
    SCREENSHOTS,
    activity_seqs,
    api_send,
    metric,
    row,
    settle,
    trigger_from_button,
    wait_connected,
)

SEVERITY_COLOURS = {"CRITICAL": "rgb(229, 72, 77)", "HIGH": "rgb(247, 107, 21)", "MEDIUM": "rgb(255, 197, 61)",
                    "LOW": "rgb(61, 214, 140)"}


def wait_analysed(page, threat_id, table="#feed"):
    expect(row(page, threat_id, table).locator("td").last).to_have_text("Completed")


def figures(page):
    """Everything the overview counts: cards, chart counts and SLA tables, as text."""
    return page.evaluate("""() => ({
        cards: Object.fromEntries([...document.querySelectorAll('[data-metric]')].map(e => [e.dataset.metric, e.textContent])),
        charts: [...document.querySelectorAll('.bar-row')].map(e => [e.parentElement.id, e.dataset.key,
                  e.querySelector('.bar-count').textContent, e.querySelector('rect').getAttribute('width')]),
        sla: [...document.querySelectorAll('#sla-severity tr, #sla-customer tr')].map(e => e.innerText),
    })""")


def test_every_trigger_button_makes_a_threat_appear_live_and_every_figure_stays_exact(browsers, server):
    page = browsers.page()
    total = int(metric(page, "total_threats"))
    buttons = page.locator("button.trigger")
    assert buttons.count() == 11  # random, six types, four scenarios

    ids = [trigger_from_button(page, f"button.trigger >> nth={n}") for n in range(buttons.count())]

    for threat_id in ids:
        wait_analysed(page, threat_id)
    expect(page.locator('[data-metric="total_threats"]')).to_have_text(str(total + len(ids)))
    settle(page)
    live = figures(page)
    fresh = browsers.page()  # the same figures, computed by the server from the database
    assert live == figures(fresh)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "overview.png"))


def test_rows_and_activity_built_live_match_what_the_server_renders(browsers, server):
    page = browsers.page()
    ids = [trigger_from_button(page, 'button[data-threat-type="geo_anomaly"]'),
           trigger_from_button(page, 'button[data-scenario="crypto_surge"]')]
    for threat_id in ids:
        wait_analysed(page, threat_id)
    newest = activity_seqs(page)[0]
    expect(page.locator("#activity li").first).to_contain_text("analysed:")

    def cells(p):
        return [row(p, i).locator("td:not(.sla)").all_inner_texts() for i in ids]

    def activity(p):
        return p.locator("#activity li").all_inner_texts()[:4]

    live_cells, live_activity = cells(page), activity(page)
    page.reload()
    assert activity_seqs(page)[0] == newest
    assert cells(page) == live_cells
    assert activity(page) == live_activity


def test_the_severity_bars_are_coloured_by_severity_name(browsers, server):
    page = browsers.page()
    critical = page.locator('#chart-severity .bar-row[data-key="CRITICAL"] .bar-count')
    before = int(critical.inner_text())

    wait_analysed(page, trigger_from_button(page, 'button[data-scenario="critical_threat"]'))

    expect(critical).to_have_text(str(before + 1))
    for severity, colour in SEVERITY_COLOURS.items():
        rect = page.locator(f'#chart-severity .bar-row[data-key="{severity}"] rect')
        assert rect.evaluate("e => getComputedStyle(e).fill") == colour
        badge = page.locator(f'#chart-severity .bar-row[data-key="{severity}"] .sev')
        assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == colour


def test_times_are_shown_in_the_analysts_zone_and_the_zone_is_named(browsers, server):
    page = browsers.page(timezone_id="Asia/Tokyo")
    threat_id = trigger_from_button(page, 'button[data-threat-type="bot_traffic"]')
    wait_analysed(page, threat_id)

    expect(page.locator("#zone")).to_have_text("Times: Asia/Tokyo (UTC+09:00)")
    cell = row(page, threat_id).locator("time")
    stored = datetime.fromisoformat(cell.get_attribute("datetime"))
    tokyo = stored.astimezone(ZoneInfo("Asia/Tokyo"))
    # One format everywhere, in the server's order, whatever the browser's locale (issue 23).
    assert cell.inner_text() == tokyo.strftime("%m-%d %H:%M:%S")
    assert cell.get_attribute("title") == tokyo.strftime("%Y-%m-%d %H:%M:%S") + " Asia/Tokyo"

    page.goto(f"{server.base_url}/threats/{threat_id}/")
    received = page.locator("#facts time").nth(1)
    stored = datetime.fromisoformat(received.get_attribute("datetime")).astimezone(ZoneInfo("Asia/Tokyo"))
    assert received.inner_text() == stored.strftime("%Y-%m-%d %H:%M:%S") + " Asia/Tokyo"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} Asia/Tokyo",
                        page.locator("ol.timeline time").first.inner_text())


def test_reopening_a_closed_threat_takes_a_fresh_snapshot_and_stays_exact(browsers, server):
    page = browsers.page()
    threat_id = trigger_from_button(page, 'button[data-threat-type="anomaly_detection"]')
    wait_analysed(page, threat_id)
    api_send(page, "PATCH", f"/api/threats/{threat_id}",
             {"status": "closed", "disposition": "benign_true_positive", "reason": "Planned migration"})
    expect(row(page, threat_id).locator("td").nth(6)).to_contain_text("Closed")

    with page.expect_response(lambda r: r.url.endswith("/api/analytics")):  # MTTR cannot drop it alone
        api_send(page, "PATCH", f"/api/threats/{threat_id}", {"status": "investigating"})

    settle(page)
    assert figures(page) == figures(browsers.page())


def test_an_sla_deadline_passing_turns_the_row_red_and_counts_it_live(browsers, server):
    page = browsers.page(clock=True)
    breached = int(metric(page, "breached_open"))
    threat_id = trigger_from_button(page, 'button[data-scenario="critical_threat"]')  # 15 minutes to acknowledge
    wait_analysed(page, threat_id)
    sla = row(page, threat_id).locator("td.sla")
    expect(sla).to_contain_text("due in 14m")
    expect(page.locator('[data-metric="breached_open"]')).to_have_text(str(breached))

    # Earlier threats still open and unacknowledged pass their deadlines in the same 15.5 minutes.
    also_due = page.evaluate("""() => JSON.parse(document.getElementById("analytics").textContent)
        .sla.watch.filter(w => new Date(w[3]).getTime() <= Date.now() + 15.5 * 60000).length""")

    page.clock.fast_forward("15:30")

    expect(sla).to_have_class("sla sla-breached")
    expect(sla).to_have_text(re.compile(r"breached [23]\ds"))
    expect(row(page, threat_id)).to_have_class("threat-row breached")
    expect(page.locator('[data-metric="breached_open"]')).to_have_text(str(breached + also_due + 1))
    expect(page.locator('[data-card="breached_open"]')).to_have_class("card metric alert")
    wait_connected(page)
