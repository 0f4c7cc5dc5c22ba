"""The Patients pages' errors in plain words (issue 16, item 12)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from trackstat.models import Role

pytestmark = pytest.mark.django_db


def test_an_unreadable_csv_is_explained_without_the_parsers_words(member_client):
    client = member_client(Role.MANAGER)
    content = b'external_id\n"' + b"x" * 200_000 + b'"\n'  # one cell past the CSV reader's limit
    upload = SimpleUploadedFile("ids.csv", content, "text/csv")

    response = client.post(reverse("patients:bulk_tag"), {"name": "VIP", "file": upload})

    assert response.status_code == 400
    assert "Or a CSV file: The file is not readable as CSV" in response.text
    assert "field limit" not in response.text
