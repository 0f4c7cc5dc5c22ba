"""Reminders patients answer (DESIGN §7): asking, reading the answer, acknowledging it.

- asking (``messaging.outbox.asking``, part of the send): a text that asked went out → its
  appointment's confirmation is ``requested``.
- ``classify``: a reply's words → ``confirm``, ``cancel``, ``reschedule`` or unclear.
- ``replies``: an inbound text within 72 hours of the latest asking text → the appointment's
  confirmation, one acknowledgement, the ``confirmation_answered`` signal (the campaigns app
  stops the sequence's later reminders), or the Inbox when unclear.
"""
