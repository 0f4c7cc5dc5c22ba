"""``make run`` points links at its own port (issue 16, item 3): ``PUBLIC_BASE_URL`` follows
``PORT`` unless it is set. Runs the real Makefile with ``UV`` replaced by a command that
prints the variable, so nothing is installed or started."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRINT_BASE = "UV=sh -c 'echo BASE=$$PUBLIC_BASE_URL' --"


def base_urls(*args: str, **env: str) -> set[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("PUBLIC_BASE_URL", "PORT")}
    environment.update(env)
    result = subprocess.run(
        ["make", "-s", "run", *args, PRINT_BASE],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {line[5:] for line in result.stdout.splitlines() if line.startswith("BASE=")}


def test_public_base_url_follows_the_port():
    assert base_urls("PORT=8123") == {"http://127.0.0.1:8123"}
    assert base_urls(PORT="8124") == {"http://127.0.0.1:8124"}
    assert base_urls() == {"http://127.0.0.1:8000"}


def test_a_public_base_url_that_is_set_wins():
    assert base_urls("PORT=8123", PUBLIC_BASE_URL="https://practice.example") == {
        "https://practice.example"
    }
