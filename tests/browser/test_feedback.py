"""Feedback where the action is (issue 23 items 4 and 5): each form of the detail page answers
right under itself, in words, without field names; success is never shown in the error colour;
an empty note says so. Acknowledge means one thing everywhere: it takes an unassigned threat
(the detail page's button and the list's bulk action alike)."""

from playwright.sync_api import expect

from tests.browser.conftest import TEAMMATE, api_get, row, wait_connected
from tests.browser.test_triage import analysed_threat, open_detail
from tests.integration.server import USERNAME


def test_each_form_answers_under_itself_in_words(browsers, server):
    page = browsers.page()
    threat_id = analysed_threat(page, 'button[data-threat-type="anomaly_detection"]')
    open_detail(page, server, threat_id)
    note, note_result = page.locator("#note-body"), page.locator("#note-message")

    page.click('#note-form button[type="submit"]')  # empty
    expect(note_result).to_have_text("Not added: the note is empty.")
    expect(note_result).to_have_class("form-result error")
    expect(page.locator("#triage-message")).to_have_text("")  # nothing lands in the triage panel

    page.evaluate("() => document.getElementById('note-body').removeAttribute('maxlength')")
    note.fill("x" * 10_001)  # over the limit: the server refuses it, named in the form's words
    page.click('#note-form button[type="submit"]')
    expect(note_result).to_have_text("Not added: Note: String should have at most 10000 characters")

    note.fill("Checked with the customer: expected batch job")
    page.click('#note-form button[type="submit"]')
    expect(note_result).to_have_text("Note added.")
    expect(note_result).to_have_class("form-result ok")  # not red after the earlier error

    page.select_option('#close-form select[name="disposition"]', "benign_true_positive")
    page.click('#close-form button[type="submit"]')  # no reason
    expect(page.locator("#close-message")).to_have_text("Closing a threat needs a reason.")
    expect(page.locator("#triage-message")).to_have_text("")

    page.click('[data-action="assign-me"]')
    expect(page.locator("#triage-message")).to_have_text("Saved.")
    expect(page.locator("#triage-message")).to_have_class("form-result ok")
    expect(page.locator("#close-message")).to_have_text("Closing a threat needs a reason.")  # its own result stays


def test_acknowledge_takes_an_unassigned_threat_on_the_detail_page_and_in_bulk(browsers, server):
    page = browsers.page(TEAMMATE)
    single = analysed_threat(page, 'button[data-threat-type="rate_limit_breach"]')
    bulk = [analysed_threat(page, 'button[data-threat-type="rate_limit_breach"]') for _ in range(2)]
    open_detail(page, server, single)
    page.click('[data-action="acknowledge"]')
    expect(page.locator('#triage-summary [data-field="assignee"]')).to_have_text(f"assigned to {TEAMMATE}")

    page.goto(f"{server.base_url}/threats/")
    wait_connected(page)
    for threat_id in bulk:
        row(page, threat_id, "#rows").locator("input.select").check()
    page.click('[data-bulk="acknowledge"]')
    expect(page.locator("#bulk-status-line")).to_have_text("Updated 2.")
    for threat_id in bulk:
        stored = api_get(page, f"/api/threats/{threat_id}")
        assert (stored["status"], stored["assignee"]) == ("acknowledged", TEAMMATE)
    assert USERNAME != TEAMMATE
