"""At 1024 px wide (a laptop with a side panel open) the pages fit the window: nothing scrolls
sideways, the feed's table included (issue 23 item 7)."""

import pytest

from tests.browser.conftest import wait_connected


@pytest.mark.parametrize("path", ["/", "/threats/"])
def test_the_page_does_not_scroll_sideways_at_1024_px(browsers, server, path):
    page = browsers.page(path=path)
    page.set_viewport_size({"width": 1024, "height": 800})
    wait_connected(page)
    overflow = page.evaluate("""() => {
        const wide = [document.scrollingElement, ...document.querySelectorAll('.table-wrap, .card')]
          .filter(el => el.scrollWidth > el.clientWidth + 1);
        return wide.map(el => (el.id || el.className || el.tagName) + ' ' + el.scrollWidth + '>' + el.clientWidth);
    }""")
    assert overflow == []
