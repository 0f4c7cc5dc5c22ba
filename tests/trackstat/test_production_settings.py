"""With DEBUG off the app refuses to start on an insecure default, saying which."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.settings_variables import settings_variables
from trackstat.settings import DEVELOPMENT_SECRET_KEY, check_production_settings

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = "v8J2-qL0zR7t_Xw5mN1cY4bH9kP3sD6fG0aE2uI8oT5yW7eQ"


@pytest.mark.parametrize(
    ("secret_key", "allowed_hosts", "message"),
    [
        ("", ["app.example.com"], "SECRET_KEY is unset or the development default"),
        (DEVELOPMENT_SECRET_KEY, ["app.example.com"], "SECRET_KEY is unset or the development"),
        ("short", ["app.example.com"], "shorter than 32"),
        (GOOD_KEY, [], "ALLOWED_HOSTS is empty"),
    ],
)
def test_insecure_production_settings_are_refused(secret_key, allowed_hosts, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        check_production_settings(debug=False, secret_key=secret_key, allowed_hosts=allowed_hosts)


def test_debug_allows_development_defaults():
    check_production_settings(debug=True, secret_key=DEVELOPMENT_SECRET_KEY, allowed_hosts=[])


def manage_check(**env) -> subprocess.CompletedProcess:
    clean = {
        k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG"}
    }
    clean.update(env, DJANGO_SETTINGS_MODULE="trackstat.settings")
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_process_refuses_to_start_without_secret_key():
    result = manage_check(DEBUG="0", ALLOWED_HOSTS="app.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY is unset or the development default" in result.stderr


def test_process_refuses_to_start_without_allowed_hosts():
    result = manage_check(DEBUG="0", SECRET_KEY=GOOD_KEY)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS is empty" in result.stderr


def test_debug_is_off_unless_set():
    """A forgotten DEBUG means production: the insecure defaults are refused, not served."""
    result = manage_check()
    assert result.returncode != 0
    assert "SECRET_KEY is unset or the development default" in result.stderr
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    env = {k: v for k, v in os.environ.items() if k != "DEBUG"}
    env.update(
        SECRET_KEY=GOOD_KEY,
        ALLOWED_HOSTS="app.example.com",
        DJANGO_SETTINGS_MODULE="trackstat.settings",
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr


def test_production_settings_start_and_pass_the_deploy_check():
    result = manage_check(DEBUG="0", SECRET_KEY=GOOD_KEY, ALLOWED_HOSTS="app.example.com")
    assert result.returncode == 0, result.stderr


def test_production_settings_turn_on_secure_cookies_and_hsts():
    code = (
        "from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0)"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS"}}
    env.update(
        DEBUG="0",
        SECRET_KEY=GOOD_KEY,
        ALLOWED_HOSTS="app.example.com",
        DJANGO_SETTINGS_MODULE="trackstat.settings",
    )
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup();" + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == ["True", "True", "True"], result.stderr


def test_env_example_and_readme_document_every_variable():
    documented = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    variables = settings_variables()
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "PUBLIC_BASE_URL"} <= variables
    for name in variables:
        assert f"# {name}=" in documented, f".env.example does not document {name}"
        assert f"`{name}`" in readme, f"README's configuration table lacks {name}"
