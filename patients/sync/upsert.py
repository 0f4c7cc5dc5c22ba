"""The set-wise writing that the patient, case and appointment upserts share.

The upserts (``patients.sync.patients``, ``cases`` and ``appointments``) take records already
validated by ``patients.sync.records`` and write them set-wise: one query per step for a whole
batch (lookups, existing rows, inserts, updates, tags), never a query per record. A record
that matches what is stored changes nothing, so re-sending the same payload is harmless.

Integrity under concurrent syncs:

- Per patient, writes are serialized: every upsert that can change a patient's appointments or
  cases first locks the patient rows concerned, in id order (``patients_lock``), then the
  cases, then the appointments. The visit facts recomputed afterwards therefore see every
  other sync's committed appointments, and bulk requests with overlapping patients never
  deadlock.
- Two requests creating the same new external id at once: the insert that loses the race
  (the unique (practice, external_id) constraint) is rolled back to its savepoint and the
  batch written again, now as an update of the row the other request created
  (``_write_retrying``). Every caller gets 200 or 201, never an IntegrityError.
- A record that passed validation but that the database still refuses (a ``DataError`` or an
  ``IntegrityError``) costs only itself: the batch is halved, in savepoints, until the record
  is alone, and it is reported like a validation error (``_write_bisecting``).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import DataError, IntegrityError, models, transaction
from django.db.models import Q

from patients.models import Lookup
from trackstat.models import Practice

logger = logging.getLogger(__name__)

# A batch that lost the race for a new external id is written again; each retry finds the
# rows that other requests created, so it only fails again if yet another request created
# one of its ids meanwhile.
CONFLICT_RETRIES = 5
# What the database refuses about a record's values (too long, out of range, a constraint;
# psycopg refuses NUL characters and lone surrogates with a ValueError before sending).
WRITE_ERRORS = (DataError, IntegrityError, ValueError)
UNSTORABLE_MESSAGE = "This record could not be stored: one of its values does not fit the database."


@dataclass
class UpsertResult:
    """What a batch did: counts, and per input index the outcome or the errors."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[dict] = field(default_factory=list)
    # index → "created" | "updated" | "unchanged"
    outcomes: dict[int, str] = field(default_factory=dict)

    def as_response(self) -> dict:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": sorted(self.errors, key=lambda e: e["index"]),
        }

    def record(self, index: int, outcome: str) -> None:
        self.outcomes[index] = outcome
        setattr(self, outcome, getattr(self, outcome) + 1)

    def merge(self, other: UpsertResult) -> None:
        self.errors += other.errors
        for index, outcome in other.outcomes.items():
            self.record(index, outcome)


def record_error(result: UpsertResult, record: dict, field_name: str, message: str) -> None:
    result.errors.append(
        {
            "index": record["_index"],
            "external_id": record["external_id"],
            "errors": {field_name: [message]},
        }
    )


def lookups_ensure(*, practice: Practice, pairs: Iterable[tuple[str, str]]) -> dict:
    """Ids of the practice's lookups ``(kind, name)``, creating the ones not seen before."""
    wanted = {(kind, name) for kind, name in pairs if name}
    if not wanted:
        return {}
    # In one order for every request: two requests creating the same values in opposite
    # orders would each wait for the other's insert (a deadlock).
    Lookup.objects.bulk_create(
        [Lookup(practice=practice, kind=kind, name=name) for kind, name in sorted(wanted)],
        ignore_conflicts=True,
    )
    condition = Q()
    for kind in {kind for kind, _ in wanted}:
        condition |= Q(kind=kind, name__in=[name for k, name in wanted if k == kind])
    return {
        (kind, name): pk
        for pk, kind, name in Lookup.objects.filter(condition, practice=practice).values_list(
            "pk", "kind", "name"
        )
    }


def set_changed(instance: models.Model, values: dict, changed: set[str]) -> None:
    for name, value in values.items():
        if getattr(instance, name) != value:
            setattr(instance, name, value)
            changed.add(name)


def _bulk_update(rows: list[models.Model], fields: set[str]) -> None:
    """Write ``fields`` of already-stored rows in one statement per batch.

    An insert that conflicts on the row's (practice, external_id) and updates those fields:
    Django's bulk_update builds a CASE expression per field and row, several times slower on
    5,000 rows. The rows are locked (select_for_update) and hold their current values in every
    other field, so nothing else changes.
    """
    model = type(rows[0])
    model.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["practice", "external_id"],
        update_fields=[*sorted(fields), "updated_at"],
        batch_size=1000,
    )


def rows_write(
    *,
    practice: Practice,
    model: type[models.Model],
    to_create: list,
    to_update: list,
    update_fields: set[str],
    existing: dict,
    outcomes: dict[str, list],
    link_model: type[models.Model],
    owner_field: str,
    target_field: str,
    links: dict[str, set[int]],
) -> None:
    """Insert the new rows, update the changed ones, then make each row's links (tags,
    diagnoses, services) exactly ``links[external_id]``; a row whose links changed counts as
    updated."""
    # New external ids in one order for every request, so that two requests creating the
    # same ones wait for each other rather than deadlock (the loser then retries).
    model.objects.bulk_create(sorted(to_create, key=lambda row: row.external_id), batch_size=1000)
    if to_update:
        _bulk_update(to_update, update_fields)
    rows = {row.external_id: row for row in [*to_create, *existing.values()]}
    changed = _replace_links(
        model=link_model,
        practice=practice,
        owner_field=owner_field,
        target_field=target_field,
        wanted={rows[external_id].pk: targets for external_id, targets in links.items()},
    )
    for row in rows.values():
        if row.pk in changed and outcomes[row.external_id][1] == "unchanged":
            outcomes[row.external_id][1] = "updated"


def _replace_links(
    *, model, practice: Practice, owner_field: str, target_field: str, wanted: dict[int, set[int]]
) -> set[int]:
    """Set-wise replace of a many-to-many through table; return the owners changed."""
    if not wanted:
        return set()
    current: dict[int, set[int]] = {pk: set() for pk in wanted}
    for owner, target in model.objects.filter(**{f"{owner_field}__in": wanted}).values_list(
        owner_field, target_field
    ):
        current[owner].add(target)
    removals = Q()
    additions = []
    changed = set()
    for owner, targets in wanted.items():
        gone, new = current[owner] - targets, targets - current[owner]
        if gone:
            removals |= Q(**{owner_field: owner, f"{target_field}__in": gone})
        additions += [
            model(practice=practice, **{owner_field: owner, target_field: t}) for t in new
        ]
        if gone or new:
            changed.add(owner)
    if removals:
        model.objects.filter(removals).delete()
    model.objects.bulk_create(additions, ignore_conflicts=True, batch_size=1000)
    return changed


def _dedupe(records: list[dict], result: UpsertResult) -> list[dict]:
    """A batch may name each external_id once: later repeats are errors, not silent merges."""
    seen: set[str] = set()
    unique = []
    for record in records:
        if record["external_id"] in seen:
            record_error(
                result, record, "external_id", "This external_id appears earlier in the request."
            )
        else:
            seen.add(record["external_id"])
            unique.append(record)
    return unique


def _external_id_taken(error: IntegrityError) -> bool:
    """Whether an insert lost the race for a new external id to a concurrent request."""
    diag = getattr(error.__cause__, "diag", None)
    constraint = getattr(diag, "constraint_name", None)
    if constraint is not None:  # PostgreSQL names the constraint
        return constraint.endswith("_external_id_unique")
    return "external_id" in str(error)  # SQLite names the columns


def _write_retrying(write: Callable[..., UpsertResult], records: list[dict], **kwargs):
    """``write(records=…)`` in a savepoint, written again when one of its inserts lost the
    race for a new external id: the retry reads (and locks) the row the other request
    created and updates it."""
    for attempt in range(CONFLICT_RETRIES):
        try:
            with transaction.atomic():
                return write(records=records, **kwargs)
        except IntegrityError as error:
            if attempt == CONFLICT_RETRIES - 1 or not _external_id_taken(error):
                raise
    raise AssertionError("unreachable")


def _write_bisecting(
    write: Callable[..., UpsertResult], records: list[dict], result: UpsertResult, **kwargs
) -> None:
    """Write ``records`` (one savepoint); if the database refuses the batch, halve it until
    the records it refuses are alone, and report each of them (``UNSTORABLE_MESSAGE``)."""
    if not records:
        return
    try:
        result.merge(_write_retrying(write, records, **kwargs))
        return
    except WRITE_ERRORS as error:
        if len(records) > 1:
            middle = len(records) // 2
            _write_bisecting(write, records[:middle], result, **kwargs)
            _write_bisecting(write, records[middle:], result, **kwargs)
            return
        # The message may quote the values (patient data): its kind and where, not what.
        logger.warning(
            "%s: record %s refused by the database (%s %s)\n%s",
            write.__name__.strip("_"),
            records[0]["_index"],
            type(error).__name__,
            getattr(getattr(error.__cause__, "diag", None), "sqlstate", "") or "",
            "".join(traceback.format_tb(error.__traceback__)),
        )
        record_error(result, records[0], "non_field_errors", UNSTORABLE_MESSAGE)


def batch_upsert(write: Callable[..., UpsertResult], records: list[dict], **kwargs) -> UpsertResult:
    """One upsert service: duplicates refused, then the batch written (see the module
    docstring), all in the caller's transaction."""
    result = UpsertResult()
    _write_bisecting(write, _dedupe(records, result), result, **kwargs)
    return result
