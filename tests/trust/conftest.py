"""The trust scenarios go through the messaging webhooks: their fixtures apply here too."""

from tests.messaging.conftest import _webhook_tasks_run_at_once, sendgrid_key  # noqa: F401
