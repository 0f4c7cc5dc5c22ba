from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from trackstat.celery import app as celery_app


@pytest.fixture
def sendgrid_key(settings):
    """A fresh ECDSA key pair; its public half configured as SendGrid's verification key."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = base64.b64encode(der).decode()
    return private_key


@pytest.fixture(autouse=True)
def _webhook_tasks_run_at_once():
    """Webhooks hand their events to Celery tasks; here the tasks run in process."""
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = eager
