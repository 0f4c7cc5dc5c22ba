"""What the messaging app announces to the apps built on it.

The campaigns app listens (``campaigns.apps``): a tracked-link click can meet a
``clicked_link`` goal of the clicked message's campaign; a patient's answer to a reminder that
asked can meet a ``confirmed`` goal or stop the sequence's later reminders. Messaging itself
knows nothing about campaigns, enrollments or goals.
"""

from django.dispatch import Signal

# message, url, at: a patient opened a tracked link of ``message`` (an OutboundMessage, locked
# in the click's transaction) that leads to ``url``. Sent inside that transaction, so what a
# receiver writes commits, or not, with the click.
link_clicked = Signal()

# practice, appointment, answer ("confirm", "cancel" or "reschedule"), at: a patient answered
# a reminder that asked about ``appointment`` (its confirmation is already set). Sent inside
# the inbound text's transaction.
confirmation_answered = Signal()
