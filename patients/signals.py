"""What the patients app announces to the apps built on it.

The campaign engine listens (``campaigns.apps``): a synced appointment can meet a goal "right
away, not only at the next tick"; so does the outbox (``messaging.apps``): an opt-out cancels
that channel's queued messages at once. The patients app itself knows nothing about campaigns
or messages.
"""

from django.dispatch import Signal

# practice, patient_ids: appointments of these patients were created or changed.
appointments_synced = Signal()
# practice, patient, channel, opted_out: a patient's opt-out for a channel changed.
opt_out_changed = Signal()
