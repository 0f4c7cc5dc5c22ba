"""What the patients app does when the tenancy core announces a change (``trackstat.signals``).

Connected in ``PatientsConfig.ready``.
"""

from __future__ import annotations

from patients.sync.visits import practice_local_dates_refresh
from trackstat.models import Practice


def practice_timezone_changed_receive(*, sender, practice: Practice, **kwargs) -> None:
    """Appointments' local dates, and the visit facts built on them, follow the new zone."""
    practice_local_dates_refresh(practice=practice)
