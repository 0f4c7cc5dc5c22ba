"""Experiments (DESIGN §5.9): holdout groups, A/B variants and their experiment periods.

``arms`` decides a patient's arm at entry (a stable hash of campaign and patient) and
``periods`` keeps one configuration per experiment period. The engine calls in at two
points only: after enrolling (``arms_assign``) and when it materializes a step
(``step_variant``, ``HOLDOUT``); the outbox's re-check refuses a held-out enrollment too.
"""
