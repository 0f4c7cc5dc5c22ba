"""docker-compose.yml stays honest: it parses, names the production services and matches the
settings (no Docker engine runs here, so this is how CI keeps it true)."""

from __future__ import annotations

import re
from pathlib import Path

import dj_database_url
import pytest
import yaml

from tests.settings_variables import settings_variables
from trackstat.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[1]
APP_SERVICES = {"web", "worker", "beat", "migrate"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_names_the_production_services(compose):
    assert set(compose["services"]) == {"db", "redis", "web", "worker", "beat", "migrate"}
    assert compose["services"]["db"]["image"].startswith("postgres:")
    assert compose["services"]["redis"]["image"].startswith("redis:")


def test_long_running_services_have_health_checks(compose):
    for name in ["db", "redis", "web", "worker", "beat"]:
        check = compose["services"][name]["healthcheck"]
        assert check["test"], name


def test_app_services_wait_for_healthy_db_and_redis(compose):
    for name in ["web", "worker", "beat"]:
        depends = compose["services"][name]["depends_on"]
        assert depends["db"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_commands_run_what_exists(compose):
    services = compose["services"]
    assert services["web"]["command"][:2] == ["gunicorn", "trackstat.wsgi"]
    assert (ROOT / "trackstat" / "wsgi.py").exists()
    assert services["worker"]["command"][:4] == ["celery", "-A", "trackstat", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "trackstat", "beat"]
    assert services["beat"]["deploy"]["replicas"] == 1  # exactly one beat
    assert celery_app.conf.beat_schedule  # what beat runs is defined in code
    assert "migrate" in " ".join(services["migrate"]["command"])


def test_app_environment_is_read_by_the_settings(compose):
    known = settings_variables()
    for name in APP_SERVICES:
        env = compose["services"][name]["environment"]
        unknown = set(env) - known
        assert not unknown, f"{name} sets variables the settings never read: {unknown}"
        assert env["DEBUG"] == "0"


def test_app_environment_points_at_the_compose_db_and_redis(compose):
    env = compose["services"]["web"]["environment"]
    database_url = env["DATABASE_URL"].replace("${POSTGRES_PASSWORD:-trackstat}", "pw")
    database = dj_database_url.parse(database_url)
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["HOST"] == "db"
    assert database["NAME"] == compose["services"]["db"]["environment"]["POSTGRES_DB"]
    assert database["USER"] == compose["services"]["db"]["environment"]["POSTGRES_USER"]
    for name in ["CELERY_BROKER_URL", "CACHE_URL"]:
        assert re.fullmatch(r"redis://redis:6379/\d+", env[name]), name


def test_production_secrets_must_be_given(compose):
    env = compose["services"]["web"]["environment"]
    for name in ["SECRET_KEY", "ALLOWED_HOSTS", "PUBLIC_BASE_URL"]:
        assert re.fullmatch(r"\$\{" + name + r":\?.+\}", env[name]), name


def test_dockerfile_installs_from_the_lock_file():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "uv sync --frozen --no-dev" in dockerfile
    assert "FROM python:3.12" in dockerfile
