"""The "+ Add Campaign" wizard's state: its draft, and one run of it (``Wizard``).

The draft is the campaign JSON of DESIGN §5 being built, kept in the session: one per new
campaign and one per campaign being edited, per practice. Each step validates its own part and
saves it here; only step 5 validates the whole draft with ``CampaignSerializer`` and writes the
campaign through ``campaign_create`` / ``campaign_update`` (which audit). Nothing is written to
the database before that, so an abandoned wizard leaves no trace but a session entry.
"""

from __future__ import annotations

import copy
import dataclasses
import re

from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse

from campaigns.language.spec import DEFAULT_SCHEDULE
from campaigns.language.triggers import default_trigger
from campaigns.models import Campaign, CampaignKind
from campaigns.services import campaign_as_json
from campaigns.views.shared import campaign_or_404
from trackstat.models import Practice
from trackstat.tenancy import PracticeRequest

STEPS = [
    ("name", "Name"),
    ("audience", "Audience"),
    ("messages", "Messages"),
    ("goals", "Goals"),
    ("review", "Activate & Review"),
]
STEP_NAMES = [name for name, _ in STEPS]
DRAFT_FIELDS = [
    "name",
    "trigger",
    "filters",
    "schedule",
    "exclude_recent_days",
    "purpose",
    "priority",
    "messages",
    "goal",
    "holdout_percent",
    "attribution_days",
    "enabled",
]
# Which step a field of the campaign JSON (and so its validation error) belongs to.
STEP_OF_FIELD = {
    "name": "name",
    "trigger": "audience",
    "filters": "audience",
    "schedule": "audience",
    "exclude_recent_days": "audience",
    "purpose": "audience",
    "priority": "audience",
    "messages": "messages",
    "goal": "goals",
    "holdout_percent": "goals",
    "attribution_days": "goals",
}
# Work in progress kept with the draft but not part of the campaign: the message step's rows
# as typed (valid or not) until the step is left, so a reload never loses them.
WORK_FIELDS = ["message_rows"]
SESSION_PREFIX = "campaign_draft"


def new_draft() -> dict:
    """What a new campaign starts from: most campaigns are for active patients, daily at 10."""
    return {
        "name": "",
        "trigger": default_trigger(),
        "filters": {"status": "active"},
        "schedule": dict(DEFAULT_SCHEDULE),
        "exclude_recent_days": 0,
        "purpose": None,
        "priority": 0,
        "messages": [],
        "goal": None,
        "holdout_percent": 0,
        "attribution_days": 30,
        "enabled": False,
    }


def draft_key(practice_id: int, campaign_id: int | None) -> str:
    return f"{SESSION_PREFIX}:{practice_id}:{campaign_id or 'new'}"


def _from_campaign(campaign: Campaign) -> dict:
    data = campaign_as_json(campaign)
    draft = {name: data.get(name) for name in DRAFT_FIELDS}
    draft["schedule"] = draft["schedule"] or dict(DEFAULT_SCHEDULE)
    # To warn at step 5 when someone else changed the campaign meanwhile.
    draft["base_updated_at"] = data["updated_at"]
    return draft


def draft_get(session, *, practice_id: int, campaign: Campaign | None = None) -> dict:
    """The draft in the session, else a new one (or the campaign as it is, for an edit).

    A copy: changes count only once saved with ``draft_save``.
    """
    stored = session.get(draft_key(practice_id, campaign.pk if campaign else None))
    if stored is not None:
        return copy.deepcopy(stored)
    return _from_campaign(campaign) if campaign else new_draft()


def draft_save(session, *, practice_id: int, campaign: Campaign | None = None, **parts) -> dict:
    """Merge ``parts`` (fields of the campaign JSON) into the draft and store it."""
    unknown = set(parts) - set(DRAFT_FIELDS) - set(WORK_FIELDS)
    if unknown:
        raise ValueError(f"Not part of a draft: {sorted(unknown)}")
    draft = draft_get(session, practice_id=practice_id, campaign=campaign)
    draft.update(copy.deepcopy(parts))
    for name in WORK_FIELDS:  # work in progress given as None is done with
        if name in draft and draft[name] is None:
            del draft[name]
    session[draft_key(practice_id, campaign.pk if campaign else None)] = draft
    return draft


def draft_discard(session, *, practice_id: int, campaign: Campaign | None = None) -> None:
    session.pop(draft_key(practice_id, campaign.pk if campaign else None), None)


def draft_campaign_data(draft: dict, *, enabled: bool) -> dict:
    """The draft as input for ``CampaignSerializer``."""
    data = {name: copy.deepcopy(draft.get(name)) for name in DRAFT_FIELDS}
    data.update(kind=CampaignKind.DRIP, enabled=enabled)
    for name in ("holdout_percent", "attribution_days"):  # a draft begun before they existed
        if data[name] is None:
            del data[name]
    return data


def errors_by_step(errors: dict) -> dict[str, dict]:
    """A serializer's errors grouped by the wizard step they belong to."""
    grouped: dict[str, dict] = {}
    for field, detail in errors.items():
        grouped.setdefault(STEP_OF_FIELD.get(field, "review"), {})[field] = detail
    return grouped


def stale(draft: dict, campaign: Campaign | None) -> bool:
    """Whether the campaign changed (elsewhere) since this edit began."""
    if campaign is None or not draft.get("base_updated_at"):
        return False
    return campaign.updated_at.isoformat() != draft["base_updated_at"]


# --- One run of the wizard ---------------------------------------------------------------------

ACTION_RE = re.compile(r"^(?P<name>[a-z_]+)(?:-(?P<index>\d+))?$")


@dataclasses.dataclass
class Wizard:
    """One run of the wizard: a new campaign (``campaign`` None) or an existing one."""

    request: PracticeRequest
    campaign: Campaign | None
    draft: dict = dataclasses.field(init=False)

    def __post_init__(self):
        self.draft = draft_get(
            self.request.session, practice_id=self.practice.pk, campaign=self.campaign
        )

    @property
    def practice(self) -> Practice:
        return self.request.practice

    def url(self, name: str, step: str | None = None) -> str:
        args = [self.campaign.pk] if self.campaign else []
        prefix = "campaigns:drip_edit_" if self.campaign else "campaigns:drip_new_"
        if step:
            return reverse(prefix + "step", args=[*args, step])
        return reverse(prefix + name, args=args)

    def save(self, **parts) -> None:
        self.draft = draft_save(
            self.request.session, practice_id=self.practice.pk, campaign=self.campaign, **parts
        )

    def move(self, step: str, action: str) -> HttpResponseRedirect:
        """After a step saved: Back, Next, or a step's pill (``go_<step>``)."""
        target = action.removeprefix("go_")
        if action.startswith("go_") and target in STEP_NAMES:
            return redirect(self.url("step", target))
        index = STEP_NAMES.index(step) + (-1 if action == "back" else 1)
        index = min(max(index, 0), len(STEP_NAMES) - 1)
        return redirect(self.url("step", STEP_NAMES[index]))

    def render(
        self, step: str, context: dict, status: int = 200, partial: str = ""
    ) -> HttpResponse:
        steps = [
            {"name": name, "label": label, "number": n, "url": self.url("step", name)}
            for n, (name, label) in enumerate(STEPS, start=1)
        ]
        context = {
            "wizard": self,
            "campaign": self.campaign,
            "draft": self.draft,
            "step": step,
            "steps": steps,
            "step_number": STEP_NAMES.index(step) + 1,
            "title": f"Edit “{self.campaign.name}”" if self.campaign else "New drip campaign",
            "urls": {
                "options": self.url("trigger_options"),
                "count": self.url("audience_count"),
                "discard": self.url("discard"),
                "step": self.url("step", step),
                "sms_count": reverse("campaigns:sms_count"),
            },
            **context,
        }
        template = f"campaigns/wizard_{step}.html"
        return render(self.request, template + partial, context, status=status)


def wizard_for(request: PracticeRequest, campaign_id: int | None) -> Wizard:
    campaign = campaign_or_404(request, campaign_id, CampaignKind.DRIP) if campaign_id else None
    return Wizard(request, campaign)


def posted_action(request: PracticeRequest) -> tuple[str, int | None]:
    """The button pressed: ``name`` or ``name-<index>`` (a step's own buttons), as (name, index)."""
    match = ACTION_RE.match(request.POST.get("action", "next"))
    if not match:
        return "next", None
    index = match.group("index")
    return match.group("name"), int(index) if index is not None else None
