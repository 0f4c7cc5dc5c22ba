"""What every process does once Django has started (``TrackstatConfig.ready``)."""

import gc

from django.db.models import Model


def test_the_objects_made_at_startup_are_out_of_the_collectors_reach():
    # Frozen objects are not tracked by any generation: a full collection does not walk them.
    assert gc.get_freeze_count() > 10_000
    assert not any(o is Model for o in gc.get_objects())
