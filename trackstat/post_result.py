"""Post/Redirect/Get for forms whose answer is a result page (a CSV import, bulk tagging).

The view does the work on POST, keeps the result in the session under a random id and
redirects to ``<page>?result=<id>``; the page shows the result while that id is the session's
latest for the page, in the practice it was posted in. A refresh shows the result again and
applies nothing; another session, or an old link, shows the plain form. One result per page
is kept, so the session does not grow.
"""

from __future__ import annotations

import secrets

from trackstat.tenancy import PracticeRequest

RESULT_PARAMETER = "result"


def _session_key(page: str) -> str:
    return f"post_result:{page}"


def post_result_keep(request: PracticeRequest, *, page: str, result: dict) -> str:
    """Keep ``result`` (plain JSON data) for ``page``; return the query string to redirect to."""
    result_id = secrets.token_urlsafe(12)
    request.session[_session_key(page)] = {
        "id": result_id,
        "practice": request.practice.pk,
        "result": result,
    }
    return f"?{RESULT_PARAMETER}={result_id}"


def post_result_get(request: PracticeRequest, *, page: str) -> dict | None:
    """The result the request's ``?result=`` names, if this session kept it here."""
    result_id = request.GET.get(RESULT_PARAMETER, "")
    kept = request.session.get(_session_key(page))
    if (
        not result_id
        or not kept
        or kept.get("practice") != request.practice.pk
        or not secrets.compare_digest(kept.get("id", ""), result_id)
    ):
        return None
    return kept["result"]
