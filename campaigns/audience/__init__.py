"""Who a campaign reaches, compiled to SQL: one query for any number of patients.

- ``triggers``: each trigger type's condition on patients (one compile branch per row of the
  trigger table, ``campaigns.language.triggers``), with its occurrence key.
- ``filters``: the filters as conditions on patients (and on the triggering appointment).
- ``exclusions``: what keeps a patient out besides (recent messages of other drips).
- ``query``: the engine's audience (trigger, filters and exclusions together) and the
  occurrences that would enter; the tick enrolls from it, and ``campaigns.selectors``'
  ``audience`` and ``explain`` read it.
- ``explain``: why a patient would or would not enter, condition by condition.
"""
