"""The side menu: each item is shown only to the roles allowed to open it (DESIGN §3)."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from trackstat.models import Role


@dataclass(frozen=True)
class MenuItem:
    label: str
    url_name: str
    role: Role
    group: str = ""


MENU = [
    MenuItem("Today", "today", Role.USER, "Communication"),
    MenuItem("Drip Campaigns", "campaigns:drip_list", Role.USER_PLUS, "Communication"),
    MenuItem("Blast Campaigns", "campaigns:blast_list", Role.USER_PLUS, "Communication"),
    MenuItem("Templates", "campaigns:template_list", Role.USER_PLUS, "Communication"),
    MenuItem("Inbox", "messaging:inbox", Role.USER, "Communication"),
    MenuItem("Reports", "reports:index", Role.USER, "Communication"),
    MenuItem("Sandbox", "messaging:sandbox", Role.USER, "Communication"),
    MenuItem("Patients", "patients:list", Role.USER),
    MenuItem("Settings", "settings_users", Role.ADMINISTRATOR),
]


def menu_for(membership) -> list[dict]:
    if membership is None:
        return []
    return [
        {"label": item.label, "url": reverse(item.url_name), "group": item.group}
        for item in MENU
        if membership.has_role(item.role)
    ]


def navigation(request) -> dict:
    membership = getattr(request, "membership", None)
    path = request.path
    items = menu_for(membership)
    # One item is current: the longest URL the path starts with (the Sandbox lives under the
    # Inbox's URL, and only the Sandbox is current on its page).
    current = max(
        (item for item in items if path.startswith(item["url"])),
        key=lambda item: len(item["url"]),
        default=None,
    )
    for item in items:
        item["active"] = item is current
    return {
        "menu_communication": [i for i in items if i["group"] == "Communication"],
        "menu_main": [i for i in items if not i["group"]],
        "current_practice": getattr(request, "practice", None),
        "current_membership": membership,
        "user_memberships": getattr(request, "memberships", []),
    }
