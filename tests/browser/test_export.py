"""Export in a real browser (issue 21 item 4): the detail page's Export links download the threat as
a readable Markdown incident summary and as JSON, the same documents the API answers."""

import json

from tests.browser.conftest import SCREENSHOTS, api_get, wait_connected


def test_the_detail_page_downloads_the_incident_summary_and_the_json(browsers, server):
    page = browsers.page(path="/threats/")
    threat = next(t for t in api_get(page, "/api/threats?limit=50")["items"] if t["analysis_status"] == "completed")
    page.goto(f"{server.base_url}/threats/{threat['id']}/")
    wait_connected(page)

    with page.expect_download() as markdown:
        page.click("#export a:has-text('Markdown')")
    text = open(markdown.value.path(), encoding="utf-8").read()
    assert markdown.value.suggested_filename == f"threat-{threat['id']}.md"
    assert text.startswith("# ") and threat["severity"] in text and threat["id"] in text

    with page.expect_download() as document:
        page.click("#export a:has-text('JSON')")
    exported = json.loads(open(document.value.path(), encoding="utf-8").read())
    answered = api_get(page, f"/api/threats/{threat['id']}/export?format=json")
    assert {**exported, "exported_at": None} == {**answered, "exported_at": None}  # the same document, later
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#export").screenshot(path=str(SCREENSHOTS / "export-links.png"))
