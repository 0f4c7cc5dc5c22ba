"""What the tenancy core announces to the apps built on it (which it does not import).

Sent inside the transaction of the change, so what a receiver writes commits or rolls back
with it.
"""

from django.dispatch import Signal

# practice: the practice's time zone has just changed (``practice.time_zone`` is the new one).
practice_timezone_changed = Signal()
