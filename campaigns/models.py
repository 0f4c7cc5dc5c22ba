"""Campaign models. The campaign builder and the engine's tables arrive with their issues."""

from __future__ import annotations

from django.db import models


class SchedulerHeartbeat(models.Model):
    """The last scheduler tick: when it ran and what it did (one row per ``name``).

    Operators read it to see that beat and the workers are alive; the health check reports its
    age.
    """

    name = models.CharField(max_length=50, unique=True)
    ticked_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    summary = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"{self.name} at {self.ticked_at:%Y-%m-%d %H:%M:%S}"
