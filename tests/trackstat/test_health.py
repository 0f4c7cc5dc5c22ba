"""``/healthz`` says what a deployment is missing (issue 13, item 22): besides the database,
the cache must round-trip (the database cache's table exists) and the static files must be
findable (with DEBUG off: the manifest and the file it names). ``migrate`` creates the cache
table, so no separate step can be forgotten.
"""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

pytestmark = pytest.mark.django_db

DB_CACHE = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "trackstat_test_health_cache",
    }
}
MANIFEST_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}


def test_healthy(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "last_tick": None,
        "database": "ok",
        "cache": "ok",
        "static": "ok",
    }


def test_migrate_creates_the_database_cache_table():
    with override_settings(CACHES=DB_CACHE):
        assert DB_CACHE["default"]["LOCATION"] not in connection.introspection.table_names()
        call_command("migrate", verbosity=0)
        assert DB_CACHE["default"]["LOCATION"] in connection.introspection.table_names()


def test_a_missing_cache_table_fails_the_check(client):
    with override_settings(CACHES=DB_CACHE):
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["status"] == "fail"
        assert response.json()["cache"] == "fail"
        assert response.json()["database"] == "ok"

        call_command("createcachetable", verbosity=0)
        assert client.get("/healthz").status_code == 200


def test_missing_static_files_fail_the_check(client, tmp_path):
    with override_settings(STORAGES=MANIFEST_STORAGES, STATIC_ROOT=tmp_path):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["static"] == "fail"


def test_a_manifest_without_its_files_fails_the_check(client, tmp_path):
    (tmp_path / "staticfiles.json").write_text(
        json.dumps({"version": "1.1", "paths": {"css/app.css": "css/app.0123456789ab.css"}})
    )
    with override_settings(STORAGES=MANIFEST_STORAGES, STATIC_ROOT=tmp_path):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["static"] == "fail"


def test_collected_static_files_pass_the_check(client, tmp_path):
    (tmp_path / "css").mkdir()
    (tmp_path / "css" / "app.0123456789ab.css").write_text("body {}")
    (tmp_path / "staticfiles.json").write_text(
        json.dumps({"version": "1.1", "paths": {"css/app.css": "css/app.0123456789ab.css"}})
    )
    with override_settings(STORAGES=MANIFEST_STORAGES, STATIC_ROOT=tmp_path):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["static"] == "ok"
