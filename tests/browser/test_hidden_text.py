"""Hidden characters in a real browser: static/js/text.js against the table the server's helper is
tested with (tests/fixtures/hidden_text.json), the same class as the server on every code point, and
a threat with a right-to-left override in its title and user agent arriving live over the WebSocket:
the row, the activity feed and the detail page show the marker, never the character."""

import json
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import api_send, row, wait_connected
from threats import hidden_text

ROOT = Path(__file__).resolve().parents[2]
TABLE = (ROOT / "tests" / "fixtures" / "hidden_text.json").read_text()
RLO = "\u202e"
TITLE = f"Invoice{RLO}fdp.exe opened"
SHOWN = "Invoice⟨U+202E⟩fdp.exe opened"
USER_AGENT = f"Mozilla/5.0 {RLO}gpj.exe"

CREATE = """
import json
from unittest import mock
from django.utils import timezone
from agents.tasks import analysis_inline
from threats import services
spec = json.loads({spec!r})
customer = services.customer_for_name("Global Finance")
analyse = analysis_inline() if spec["analyse"] else mock.patch("agents.tasks._submit")
with analyse:
    threat = services.do_create_threat(
        customer=customer, threat_type="bot_traffic", title=spec["title"], occurred_at=timezone.now(),
        actor=services.SYSTEM, observables={{"src_ip": "203.0.113.7", "user_agent": spec["user_agent"]}})
print(threat.pk)
"""
ANALYSE = "from agents import coordinator; coordinator.analyze({id!r})"


def create(server, analyse):
    spec = json.dumps({"title": TITLE, "user_agent": USER_AGENT, "analyse": analyse})  # ASCII: \\u escapes
    return server.manage("shell", "-c", CREATE.format(spec=spec)).strip().splitlines()[-1]


def blank_page_with_text_js(chromium):
    page = chromium.new_page()
    page.add_script_tag(path=str(ROOT / "static" / "js" / "text.js"))
    return page


def test_text_js_shows_each_character_as_the_shared_table_says(chromium):
    page = blank_page_with_text_js(chromium)

    # Compared in the page: the table holds lone surrogates, which cannot cross to Python as text.
    differ = page.evaluate("""table => JSON.parse(table)
        .filter(c => JSON.stringify(SocText.pieces(c.input)) !== JSON.stringify(c.pieces))
        .map(c => c.name + ": " + JSON.stringify(SocText.pieces(c.input)))""", TABLE)
    capped = page.evaluate("""() => {
        const found = SocText.pieces("a\\u200b".repeat(100000));
        return [found.filter(p => p[0] === "mark").length, found[found.length - 1][1] === "a\\ufffd".repeat(99000)];
    }""")

    assert differ == []
    assert capped == [hidden_text.MAX_MARKERS, True]
    page.close()


def test_text_js_and_the_server_hide_the_same_code_points(chromium):
    page = blank_page_with_text_js(chromium)

    def ranges(hidden):
        found = []
        for code in hidden:
            if found and found[-1][1] == code - 1:
                found[-1][1] = code
            else:
                found.append([code, code])
        return found

    in_browser = page.evaluate("""() => {
        const found = [];
        for (let code = 0; code <= 0x10FFFF; code++) {
            if (SocText.pieces(String.fromCodePoint(code)).some(p => p[0] === "mark")) found.push(code);
        }
        return found;
    }""")
    on_server = [code for code in range(0x110000) if hidden_text.pieces(chr(code)) != [("text", chr(code))]]

    assert ranges(in_browser) == ranges(on_server) == [list(r) for r in hidden_text.HIDDEN_RANGES]
    page.close()


def test_a_hidden_override_arriving_live_is_shown_as_a_marker_in_the_row_and_the_activity(browsers, server):
    page = browsers.page()
    threat_id = create(server, analyse=True)

    api_send(page, "POST", "/api/threats/trigger", {"threat_type": "bot_traffic"})  # the catch-up brings it

    link = row(page, threat_id).locator("td.title a")
    expect(link).to_have_text(SHOWN)
    expect(link.locator("span.hidden-char")).to_have_text("⟨U+202E⟩")
    expect(page.locator("#activity li a", has_text=SHOWN).first).to_be_visible()
    live = link.inner_html()
    assert RLO not in page.locator("body").text_content()
    received = [m for m in browsers.frames[page] if (m.get("threat") or {}).get("id") == threat_id]
    assert received and received[0]["threat"]["title"] == TITLE  # the data arrived as it is

    page.reload()
    wait_connected(page)
    assert row(page, threat_id).locator("td.title a").inner_html() == live  # the server writes the same markup


def test_the_detail_page_shows_the_hidden_override_in_the_user_agent_live(browsers, server):
    threat_id = create(server, analyse=False)
    page = browsers.page(path=f"/threats/{threat_id}/")
    expect(page.locator("#facts .threat-title")).to_have_text(SHOWN)
    expect(page.locator("dl.observables")).to_contain_text("Mozilla/5.0 ⟨U+202E⟩gpj.exe")
    assert page.title().startswith(SHOWN)

    server.manage("shell", "-c", ANALYSE.format(id=threat_id))  # another process: no push of its own
    api_send(page, "POST", "/api/threats/trigger", {})  # the next live event brings the page up to date

    expect(page.locator("#analysis-status")).to_have_text("Completed")
    excerpts = page.locator("#analysis td code", has_text="⟨U+202E⟩")
    expect(excerpts.first).to_be_visible()
    assert excerpts.first.locator("span.hidden-char").count() >= 1
    assert RLO not in page.locator("body").text_content()
