"""The walk-through of issue 16 in Chromium: the demo practice (``seed_demo``), signed in as
each of the four roles, every page the menu offers plus the wizard's five steps, a blast
(made through its form, then its page), the Inbox and a thread, a patient's page, the reports
and the settings. On every page: a status below 400 (or the "Not allowed" page where the role
may not go), no console error, no Content Security Policy violation, nothing wider than a
1366 px screen, no column heading split mid-word, and no developer wording."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.test import override_settings
from playwright.sync_api import expect

from campaigns.models import Campaign, CampaignKind
from demo.management.commands.seed_demo import DEMO_LOGINS
from patients.models import Patient
from trackstat.models import Practice, Role

pytestmark = pytest.mark.django_db(transaction=True)

WIDTH = 1366
# Records every CSP violation the page sees (an inline style or script the policy refused).
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(
    `${e.violatedDirective} ${e.blockedURI || ''} ${e.sourceFile || ''}:${e.lineNumber || ''}`
  );
});
"""
# Column headings of one word that the browser split across lines ("AL / L").
BROKEN_HEADINGS = """
[...document.querySelectorAll('main thead th')].filter((th) => {
  if (!th.textContent.trim() || /\\s/.test(th.textContent.trim())) return false;
  const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
  const lines = new Set();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const rect of range.getClientRects()) {
      if (rect.width > 0) lines.add(Math.round(rect.top));
    }
  }
  return lines.size > 1;
}).map((th) => th.textContent.trim())
"""
# Words written for developers, not staff (issue 16, item 12).
DEVELOPER_WORDING = re.compile(
    r"must not be above|the engine|engine's|A non-empty list|An object with|"
    r"Expected an object|\bnull\b|\bJSON\b|Traceback|non_field_errors|"
    r"Unknown parameter|Not used with when"
)
WIZARD_STEPS = ["name", "audience", "messages", "goals", "review"]
# The role each page needs (DESIGN §3); below it, the "Not allowed" page is the answer.
NEEDS = {
    "/campaigns/": Role.USER_PLUS,
    "/settings/": Role.ADMINISTRATOR,
    "/patients/bulk-tag/": Role.MANAGER,
    "/patients/import/": Role.MANAGER,
}


@pytest.fixture
def demo(transactional_db):
    with override_settings(DEBUG=True):
        call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    return Practice.objects.get(slug="demo")


def _needed(path: str) -> Role:
    return next((role for prefix, role in NEEDS.items() if path.startswith(prefix)), Role.USER)


class Walk:
    def __init__(self, page, role: Role, artifacts):
        self.page = page
        self.artifacts = artifacts
        self.role = role
        self.console: list[str] = []
        self.problems: list[str] = []
        page.on(
            "console",
            lambda message: message.type == "error" and self.console.append(message.text),
        )
        page.on("pageerror", lambda error: self.console.append(str(error)))

    def check(self, path: str, response=None) -> None:
        found = len(self.problems)
        self._check(path, response)
        if len(self.problems) > found:  # a picture of each page with a problem
            name = re.sub(r"[^\w]+", "-", path).strip("-") or "home"
            # caret="initial": hiding the caret (Playwright's default) puts an empty style
            # attribute on every input, which htmx's settle step (attributesToSettle) copies
            # onto an input it swaps in, and the page's CSP rightly reports an inline style.
            self.page.screenshot(
                path=self.artifacts / f"problem-{name}.png", full_page=True, caret="initial"
            )

    def _check(self, path: str, response=None) -> None:
        page = self.page
        if response is None and not path.startswith("after "):
            response = page.goto(path)
        page.wait_for_load_state("networkidle")
        where = f"{self.role.label} {path}"
        status = response.status if response else 200
        allowed = self.role >= _needed(path)
        if status == 403 and not allowed:
            expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
            # Chromium logs the intended 403 of the page itself as a console error.
            self.console[:] = [m for m in self.console if "status of 403" not in m]
        elif status >= 400:
            self.problems.append(f"{where}: status {status}")
        violations = page.evaluate("window.__cspViolations || []")
        if violations:
            self.problems.append(f"{where}: CSP {violations}")
        if self.console:
            self.problems.append(f"{where}: console {self.console}")
            self.console.clear()
        width = page.evaluate("document.scrollingElement.scrollWidth")
        if width > WIDTH:
            self.problems.append(f"{where}: {width} px wide")
        broken = page.evaluate(BROKEN_HEADINGS)
        if broken:
            self.problems.append(f"{where}: headings split mid-word {broken}")
        text = page.locator("main").inner_text() if page.locator("main").count() else ""
        found = DEVELOPER_WORDING.findall(text)
        if found:
            self.problems.append(f"{where}: developer wording {sorted(set(found))}")


def _sign_in(page, email: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


@pytest.mark.parametrize(
    ("email", "password", "role"), [(e, p, r) for e, p, r, _f, _l in DEMO_LOGINS]
)
def test_every_page_of_each_role_is_clean(page, demo, email, password, role, test_artifacts):
    page.set_viewport_size({"width": WIDTH, "height": 900})
    page.context.add_init_script(CSP_LISTENER)
    walk = Walk(page, role, test_artifacts)
    _sign_in(page, email, password)
    walk.check("/")

    menu = page.get_by_role("navigation", name="Main menu")
    menu_paths = list(
        dict.fromkeys(
            menu.get_by_role("link").evaluate_all(
                "links => links.map(a => new URL(a.href).pathname)"
            )
        )
    )
    assert menu_paths, "the menu offers pages"
    patient = Patient.objects.filter(practice=demo).order_by("pk").first()
    drip = Campaign.objects.filter(practice=demo, kind=CampaignKind.DRIP).order_by("pk").first()
    blast = Campaign.objects.filter(practice=demo, kind=CampaignKind.BLAST).order_by("pk").first()
    paths = [
        *menu_paths,
        f"/patients/{patient.pk}/",
        "/patients/appointment-requests/",
        "/patients/bulk-tag/",
        "/patients/import/",
        f"/inbox/{patient.pk}/",
        "/inbox/messages/",
        "/reports/",
        f"/reports/campaigns/{drip.pk}/",
        f"/campaigns/drip/{drip.pk}/",
        *(f"/campaigns/drip/{drip.pk}/edit/{step}/" for step in WIZARD_STEPS),
        *(f"/campaigns/drip/new/{step}/" for step in WIZARD_STEPS),
        f"/campaigns/blast/{blast.pk}/",
        f"/campaigns/blast/{blast.pk}/edit/",
        "/campaigns/blast/new/",
        "/campaigns/templates/new/",
        "/settings/users/",
        "/settings/practice/",
        "/settings/policy/",
        "/settings/providers/",
        "/settings/api-keys/",
        "/settings/webhooks/",
        "/accounts/profile/",
    ]
    for path in dict.fromkeys(paths):
        walk.check(path)

    if role >= Role.USER_PLUS:  # a blast made through its form, then its page
        page.goto("/campaigns/blast/new/")
        page.get_by_label("Campaign name").fill(f"Walk blast {role.label}")
        page.locator("textarea[name=body]").fill("Hi {{PatientFirstName}}, we open late Monday.")
        page.get_by_label("As soon as it is enabled").check()
        with page.expect_navigation():
            page.get_by_role("button", name=re.compile("^Save")).click()
        assert re.search(r"/campaigns/blast/\d+/$", page.url), page.url
        walk.check(page.url.removeprefix(page.url.split("/campaigns")[0]))

    assert not walk.problems, "\n".join(walk.problems)


def test_the_walk_sees_a_csp_violation_when_there_is_one(page, demo):
    """The check above can fail: an inline style attribute put on the page is reported."""
    page.context.add_init_script(CSP_LISTENER)
    page.goto("/accounts/login/")
    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<p style=\"color: red\">x</p>')")
    page.wait_for_function("window.__cspViolations.length > 0")
    assert "style-src" in page.evaluate("window.__cspViolations")[0]
