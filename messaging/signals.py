"""What the messaging app announces to the apps built on it.

The campaigns app listens (``campaigns.apps``): a tracked-link click can meet a
``clicked_link`` goal of the clicked message's campaign. Messaging itself knows nothing about
campaigns, enrollments or goals.
"""

from django.dispatch import Signal

# message, url, at: a patient opened a tracked link of ``message`` (an OutboundMessage, locked
# in the click's transaction) that leads to ``url``. Sent inside that transaction, so what a
# receiver writes commits, or not, with the click.
link_clicked = Signal()
