"""Asking before harm: a destructive or mass action acts only on a confirmed POST.

A form that revokes, removes or sends to many carries ``data-confirm="<question with the
numbers>"``. With JavaScript, ``static/js/confirm.js`` shows the question in the browser's own
dialog; OK adds ``confirmed=yes`` to the form and lets it go, Cancel stops it (nothing is sent).
Without JavaScript (or from a script that posts directly) the POST arrives without
``confirmed=yes`` and the view answers with a confirmation page instead of acting: the same
question, the numbers, and a button that re-posts the same fields confirmed. So the server,
not the script, decides that nothing happens unasked.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

CONFIRMED_FIELD = "confirmed"
CONFIRMED_VALUE = "yes"


def is_confirmed(request: HttpRequest) -> bool:
    """Whether this POST says the person confirmed (the dialog's OK or the page's button)."""
    return request.POST.get(CONFIRMED_FIELD) == CONFIRMED_VALUE


def confirmation_page(
    request: HttpRequest,
    *,
    question: str,
    detail: str = "",
    confirm_label: str,
    cancel_url: str,
    danger: bool = True,
) -> HttpResponse:
    """The page a POST without confirmation gets: the question and a button that re-posts the
    same fields (and the pressed button's name and value) with ``confirmed=yes``."""
    fields = [
        (name, value)
        for name, values in request.POST.lists()
        if name not in ("csrfmiddlewaretoken", CONFIRMED_FIELD)
        for value in values
    ]
    context = {
        "question": question,
        "detail": detail,
        "confirm_label": confirm_label,
        "cancel_url": cancel_url,
        "action": request.get_full_path(),
        "fields": fields,
        "danger": danger,
    }
    return render(request, "trackstat/confirm.html", context)
