"""The outbox: every message TrackStat sends, from the moment it is due to what the provider
said about it (DESIGN §6, §7).

``dispatch`` claims due messages (paced per practice); ``send`` re-checks each claimed
message and hands it to its provider exactly once; ``status`` moves messages forward and
records every transition; ``reconcile`` settles the ones whose provider call got no answer.
``window`` (quiet hours), ``addresses`` (may a patient get this channel?) and ``footer`` (the
STOP footer of a patient's first text) are the rules every message obeys, whoever wrote it.
Campaigns write outbox rows and register their own pre-send re-check (``checks``); nothing
here imports the apps above messaging.
"""
