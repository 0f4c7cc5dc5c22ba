"""Celery tasks of the reports app."""

from __future__ import annotations

from celery import shared_task

from reports.attribution import outcomes_refresh
from reports.rollup import rollups_refresh


@shared_task(ignore_result=True)
def refresh_rollups_task() -> None:
    """Count what changed into the report roll-ups (beat, every 15 s). Idempotent, and a run
    that finds another one running returns at once. Then the experiments' outcomes of the
    patients whose EMR data changed (``reports.attribution``)."""
    rollups_refresh()
    outcomes_refresh()
