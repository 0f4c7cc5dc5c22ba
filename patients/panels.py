"""Panels that the apps built on patients add to the patient page (DESIGN §9).

The patients app knows nothing of campaigns or messages. An app above it registers a panel
(in its ``AppConfig.ready``) that one of its own views serves; the patient page shows a
placeholder for each panel the member's role may see, which htmx replaces with the view's
partial when it scrolls into view, and whose plain link opens the same view as a whole page
in a browser without JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from trackstat.models import Membership, Role


@dataclass(frozen=True)
class PatientPanel:
    key: str  # the panel's HTML id on the patient page, unique
    title: str  # its heading, shown until the panel has loaded
    link_text: str  # the plain link to the view's page
    url_name: str  # a view of one patient: its only URL argument is ``patient_id``
    role: Role  # the weakest role that sees the panel (the view checks it too)
    position: int  # panels are shown in this order


_panels: dict[str, PatientPanel] = {}


def patient_panel_register(panel: PatientPanel) -> None:
    """Add ``panel`` to every patient page (registering the same key again replaces it)."""
    _panels[panel.key] = panel


@dataclass(frozen=True)
class ShownPanel:
    panel: PatientPanel
    url: str


def patient_panels(*, membership: Membership | None, patient_id: int) -> list[ShownPanel]:
    """The panels this member may see on a patient's page, in order, with their URLs."""
    if membership is None:
        return []
    return [
        ShownPanel(panel, reverse(panel.url_name, kwargs={"patient_id": patient_id}))
        for panel in sorted(_panels.values(), key=lambda p: (p.position, p.key))
        if membership.has_role(panel.role)
    ]
