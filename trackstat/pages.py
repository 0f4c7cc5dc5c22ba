"""A page whose feature has not landed yet: the URL and its role check are already real."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def not_yet_built(request: HttpRequest, *, title: str, issue: str) -> HttpResponse:
    return render(request, "not_yet_built.html", {"title": title, "issue": issue})
