"""Public pages reached from messages, without signing in: tracked links (``/l/<token>``) and
email unsubscribe links (``/unsubscribe/<token>/``, DESIGN §7).

The token in the URL is the only credential: it names one message and authorizes exactly one
action (record a click; opt that message's patient out of email). Unsubscribe POSTs come
from mail clients (RFC 8058 one-click) without a CSRF token, so that view is CSRF-exempt.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from messaging.links import link_click, patient_unsubscribe, tracked_link_url, unsubscribe_message

ONE_CLICK = "One-Click"


@never_cache
@require_safe
def tracked_link(request: HttpRequest, token: str) -> HttpResponse:
    """Record the click (GET; a HEAD only looks) and redirect to the link's URL."""
    if request.method == "HEAD":
        url = tracked_link_url(token=token)
    else:
        url = link_click(token=token, now=timezone.now())
    if url is None:
        raise Http404("Unknown link.")
    return HttpResponseRedirect(url)


@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET: ask to confirm (a plain form, no JavaScript). POST: unsubscribe from email; the
    mail client's one-click POST (``List-Unsubscribe=One-Click``) gets an empty answer."""
    message = unsubscribe_message(token=token)
    if message is None:
        raise Http404("Unknown unsubscribe link.")
    context = {"practice_name": message.practice.name}
    if request.method != "POST":
        return render(request, "messaging/unsubscribe.html", context)
    patient_unsubscribe(message=message)
    if request.POST.get("List-Unsubscribe") == ONE_CLICK:
        return HttpResponse("", content_type="text/plain")
    return render(request, "messaging/unsubscribe_done.html", context)
