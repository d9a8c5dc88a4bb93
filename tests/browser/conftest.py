"""Fixtures for test layer 3 (real Chromium, harness page, no Jupyter). See harness.py."""

import pytest
from harness import HarnessServer, close_shared_chromium, open_widget_page, require_chromium, shared_chromium


@pytest.fixture(scope="session")
def chromium():
    """The session's headless system Chromium (shared with the e2e layer)."""
    require_chromium()
    yield shared_chromium()
    close_shared_chromium()


@pytest.fixture(scope="session")
def harness_server():
    with HarnessServer() as server:
        yield server


@pytest.fixture
def widget_page(chromium, harness_server):
    """Factory: ``widget_page(widget_or_bundle, state=None, views=1) -> WidgetPage``.

    Fails the test at teardown if the page logged uncaught errors (clear ``page.errors`` in a
    test that provokes them on purpose)."""
    pages = []

    def make(widget_or_bundle, state=None, views=1):
        wp = open_widget_page(chromium, harness_server.url, widget_or_bundle, state=state, views=views)
        pages.append(wp)
        return wp

    yield make
    errors = [e for wp in pages for e in wp.errors]
    for wp in pages:
        wp.page.close()
    assert not errors, f"JavaScript errors in the harness page: {errors}"
