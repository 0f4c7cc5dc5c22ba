"""Browser tests: Playwright's sync API driving Debian's Chromium against pytest-django's
``live_server``.

Every test here is marked ``e2e`` and skipped, with the reason, when ``/usr/bin/chromium`` is
missing (``.ci/run`` installs it; ``apt-get install chromium`` does locally). Screenshots of
each step go to ``$E2E_ARTIFACTS_DIR`` (default ``var/e2e-screenshots/``), one folder per
test, plus ``failed.png`` when a test fails.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

CHROMIUM = Path("/usr/bin/chromium")
HERE = Path(__file__).parent
TIMEOUT_MS = 15_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(
        reason=f"Chromium is not installed at {CHROMIUM} (apt-get install chromium; "
        ".ci/run installs it)"
    )
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.e2e)
            if not CHROMIUM.exists():
                item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    # Keep each phase's report on the test, so the page fixture can screenshot a failure.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="package", autouse=True)
def _async_unsafe_orm() -> Iterator[None]:
    """Playwright's sync API keeps an event loop running in this thread, so Django would
    refuse the tests' own ORM calls (SynchronousOnlyOperation). Allowed for this package
    only: the browser is closed when the package ends, and with it the loop."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="package")
def browser(_async_unsafe_orm):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(os.environ.get("E2E_ARTIFACTS_DIR") or settings.BASE_DIR / "var/e2e-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def test_artifacts(request, artifacts_dir) -> Path:
    """This test's screenshot folder, emptied first so no stale step survives a rerun."""
    path = artifacts_dir / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def page(request, browser, live_server, test_artifacts):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        page.screenshot(path=test_artifacts / "failed.png", full_page=True)
    context.close()


@pytest.fixture
def shot(page, test_artifacts) -> Callable[[str], Path]:
    """``shot("step name")`` saves a full-page screenshot as ``NN-step-name.png``."""
    count = 0

    def take(name: str) -> Path:
        nonlocal count
        count += 1
        path = test_artifacts / f"{count:02d}-{re.sub(r'[^\w]+', '-', name).strip('-')}.png"
        page.screenshot(path=path, full_page=True)
        return path

    return take


@pytest.fixture
def login(page) -> Callable[[str, str], None]:
    """Sign in through the real login form."""
    from playwright.sync_api import expect

    def sign_in(email: str, password: str) -> None:
        page.goto("/accounts/login/")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    return sign_in


@pytest.fixture
def open_menu(page) -> Callable[[str], None]:
    """Open a page through the side menu, as staff do."""

    def click(label: str) -> None:
        page.get_by_role("navigation", name="Main menu").get_by_role("link", name=label).click()

    return click


@pytest.fixture
def add_patients() -> Callable[..., None]:
    """``add_patients(practice, {...}, {...})``: patients through the EMR sync service."""
    from patients.sync.patients import patients_upsert

    def add(practice, *records: dict) -> None:
        result = patients_upsert(
            practice=practice, records=[{"_index": i, **r} for i, r in enumerate(records)]
        )
        assert result.errors == []

    return add


def midday_time_zone(now: dt.datetime | None = None) -> str:
    """A time zone where it is now between 12:00 and 13:00, so whatever a test sends falls
    inside the practice's sending window (08:00-21:00) at any hour the suite runs."""
    offset = 12 - (now or timezone.now()).astimezone(dt.UTC).hour  # -11 … +12 hours
    # The Etc zones' signs are POSIX-style: Etc/GMT-5 is five hours ahead of UTC.
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


@pytest.fixture
def practice(db):
    """The practice of a browser test (this overrides the suite's): its local time is midday,
    so texts sent at the wall-clock time the test runs are not held for quiet hours."""
    from tests.factories import PracticeFactory

    return PracticeFactory(name="Spine & Wellness", time_zone=midday_time_zone())
