"""The roll-up's batches as set-based SQL on PostgreSQL: one statement per batch.

``reports.rollup`` counts a batch message by message in Python, which works on every database
(SQLite is the embedded default). On PostgreSQL the same batch is one statement: it takes the
oldest rows of the queue with their messages, skipping messages still in flight, and deletes
them (``DELETE … RETURNING``; no row locks: one roll-up runs at a time and nothing else
deletes queue rows), works out each message's facts from every status it reached (its
events), records them in its narrow facts row (a plain insert the first time, else an update
in place: no ``ON CONFLICT``; the wide outbox row is never rewritten), adds
the new facts to the day counters and the skip counts (``INSERT … SELECT … GROUP BY …
ON CONFLICT DO UPDATE``), and records the new recipient days with every ``prev_day`` kept
right (index probes for the known days just before and after each new one) and their counts
by day and previous day. The rules are the ones ``reports.rollup`` states; the facts' bits and
the status table are read from there, so the two ways cannot drift apart (the report tests
run both).
"""

from __future__ import annotations

import json

from django.db import connection

from campaigns.models import Enrollment
from messaging.models import SENT_STATUSES, MessageEvent, OutboundMessage
from reports.models import (
    NO_PREV_DAY,
    NO_STEP,
    CampaignDayStat,
    MessageFacts,
    PendingMessage,
    RecipientDay,
    RecipientDayStat,
    SkipDayStat,
)
from trackstat.models import Practice

# PostgreSQL's memory for a batch's sorts and hash tables (the default is 4 MB).
WORK_MEM = "64MB"


def _status_bits(column: str, status_facts: dict[str, int]) -> str:
    """SQL for the facts a message has for reaching the status in ``column``."""
    cases = " ".join(f"WHEN '{status}' THEN {bits}" for status, bits in status_facts.items())
    return f"(CASE {column} {cases} ELSE 0 END)"


def messages_count(
    *, limit: int, in_flight: list[str], fact, counters: dict, status_facts
) -> tuple[int, list[tuple[int, bool, bool, bool]]]:
    """Count the messages of up to ``limit`` queue rows into the roll-ups. Return how many
    queue rows were taken,
    and the new sent / delivered / clicked facts of the messages of experiment enrollments
    (enrollment id, sent, delivered, clicked), which ``reports.attribution`` adds to the arms."""
    messages = OutboundMessage._meta.db_table
    events = MessageEvent._meta.db_table
    practices = Practice._meta.db_table
    day_stats = CampaignDayStat._meta.db_table
    skip_stats = SkipDayStat._meta.db_table
    recipient_days = RecipientDay._meta.db_table
    day_gaps = RecipientDayStat._meta.db_table
    enrollments = Enrollment._meta.db_table
    queue = PendingMessage._meta.db_table
    facts = MessageFacts._meta.db_table
    arm_bits = fact.SENT | fact.DELIVERED | fact.CLICKED
    counter_sums = ", ".join(
        f"count(*) FILTER (WHERE new & {bit} <> 0)" for bit in counters
    )  # in FACT_COUNTERS order
    counter_names = ", ".join(counters.values())
    counter_adds = ", ".join(f"{name} = t.{name} + excluded.{name}" for name in counters.values())
    sql = f"""
    WITH picked AS MATERIALIZED (
        -- The oldest queue rows but those of messages still in flight, with their message
        -- (read here once: the batch's columns come from this row). No row locks: one
        -- roll-up runs at a time (``RollupState``), and nothing else deletes queue rows.
        SELECT q.ctid AS tid, q.message_id, m.id, m.practice_id, m.campaign_id,
            m.step_position, m.patient_id, m.channel, m.status, m.status_reason, m.sent_at,
            m.scheduled_for, m.unsubscribed_at, m.enrollment_id, m.is_test
        FROM {queue} q LEFT JOIN {messages} m ON m.id = q.message_id
        WHERE (m.status = ANY(%(in_flight)s)) IS NOT TRUE
        ORDER BY q.id LIMIT %(limit)s
    ),
    claimed AS MATERIALIZED (
        -- Deleted by their address (no index probe each).
        DELETE FROM {queue} WHERE ctid = ANY(ARRAY(SELECT tid FROM picked))
        RETURNING message_id
    ),
    batch AS MATERIALIZED (
        SELECT DISTINCT ON (id) * FROM picked
        WHERE id IS NOT NULL AND NOT is_test AND campaign_id IS NOT NULL
        ORDER BY id
    ),
    raw AS (
        SELECT m.id, m.practice_id, m.campaign_id, COALESCE(m.step_position, {NO_STEP}) AS step,
            m.patient_id, m.channel, m.status, m.status_reason, COALESCE(f.flags, 0) AS old,
            f.day AS report_day, f.ctid AS facts_tid, m.enrollment_id,
            en.id IS NOT NULL AS experiment,
            COALESCE(f.flags, 0) | COALESCE(r.bits, 0) | {_status_bits("m.status", status_facts)}
                | CASE WHEN m.unsubscribed_at IS NOT NULL THEN {fact.UNSUBSCRIBED} ELSE 0 END
                AS reached_facts,
            (COALESCE(m.sent_at, m.scheduled_for) AT TIME ZONE p.time_zone)::date AS local_day
        FROM batch m
        LEFT JOIN {facts} f ON f.message_id = m.id
        JOIN {practices} p ON p.id = m.practice_id
        -- Each message's events by an index probe (LATERAL), whatever the planner's idea of
        -- the events table: on a backfill without statistics it hashed the batch and read
        -- every event of every message at each batch, a cost growing with the table.
        CROSS JOIN LATERAL (
            SELECT bit_or({_status_bits("e.status", status_facts)}) AS bits
            FROM {events} e WHERE e.message_id = m.id
        ) r
        LEFT JOIN {enrollments} en ON en.id = m.enrollment_id
            AND en.experiment_period IS NOT NULL
    ),
    with_facts AS (
        SELECT *, CASE WHEN channel = 'email' AND reached_facts & {fact.CLICKED} <> 0
            THEN reached_facts | {fact.OPENED} ELSE reached_facts END AS facts
        FROM raw
    ),
    counted AS MATERIALIZED (
        SELECT id, practice_id, campaign_id, step, patient_id, status, status_reason, facts,
            facts_tid, enrollment_id, experiment, facts & ~old AS new,
            CASE WHEN facts & ~old <> 0 AND report_day IS NULL THEN local_day
                ELSE report_day END AS day
        FROM with_facts
    ),
    -- A message's facts row: inserted the first time, else rewritten in place by its
    -- address (no other writer: one roll-up at a time), so no speculative insertion.
    marked AS (
        INSERT INTO {facts} (message_id, flags, day)
        SELECT id, facts, day FROM counted WHERE new <> 0 AND facts_tid IS NULL
    ),
    remarked AS (
        UPDATE {facts} t SET flags = c.facts, day = c.day
        FROM counted c WHERE c.new <> 0 AND c.facts_tid IS NOT NULL AND t.ctid = c.facts_tid
    ),
    days_added AS (
        INSERT INTO {day_stats} AS t
            (practice_id, campaign_id, step_position, day, {counter_names}, conversions)
        SELECT practice_id, campaign_id, step, day, {counter_sums}, 0
        FROM counted WHERE new <> 0
        GROUP BY practice_id, campaign_id, step, day
        ON CONFLICT (campaign_id, step_position, day) DO UPDATE SET {counter_adds}
    ),
    skips_added AS (
        INSERT INTO {skip_stats} AS t
            (practice_id, campaign_id, step_position, day, status, reason, count)
        SELECT practice_id, campaign_id, step, day, status, left(status_reason, 200), count(*)
        FROM counted WHERE new & {fact.SKIPPED} <> 0
        GROUP BY practice_id, campaign_id, step, day, status, left(status_reason, 200)
        ON CONFLICT (campaign_id, step_position, day, status, reason)
        DO UPDATE SET count = t.count + excluded.count
    ),
    new_days AS MATERIALIZED (
        SELECT DISTINCT c.practice_id, c.campaign_id, l.level, c.patient_id, c.day
        FROM counted c CROSS JOIN LATERAL (VALUES ({NO_STEP}), (c.step)) AS l(level)
        WHERE c.new & {fact.SENT} <> 0 AND c.patient_id IS NOT NULL
        -- In the order of the index the probes below read.
        ORDER BY c.campaign_id, c.patient_id, l.level, c.day
    ),
    -- Each of the batch's days with the patient's known days around it: the first known day
    -- after it (an index probe), and the latest known on or before it (the day itself when it
    -- is known already). That one is the next day's ``prev_day`` when there is a next day;
    -- only a day after all the known ones takes a second probe. So a patient's history is
    -- never read whole.
    around AS MATERIALIZED (
        SELECT n.*, a.id AS next_id, a.tid AS next_tid, a.day AS next_day,
            a.prev_day AS next_prev,
            CASE WHEN a.id IS NOT NULL THEN a.prev_day ELSE (
                SELECT r.day FROM {recipient_days} r WHERE r.campaign_id = n.campaign_id
                    AND r.patient_id = n.patient_id AND r.step_position = n.level
                    AND r.day <= n.day
                ORDER BY r.day DESC LIMIT 1
            ) END AS known_before
        FROM new_days n
        LEFT JOIN LATERAL (
            SELECT r.id, r.ctid AS tid, r.day, r.prev_day FROM {recipient_days} r
            WHERE r.campaign_id = n.campaign_id AND r.patient_id = n.patient_id
                AND r.step_position = n.level AND r.day > n.day
            ORDER BY r.day LIMIT 1
        ) a ON true
    ),
    -- The days the patients did not have yet, each with its previous day: the later of the
    -- batch's own day before it and the last known day before it.
    fresh AS MATERIALIZED (
        SELECT * FROM around WHERE known_before IS DISTINCT FROM day
    ),
    added AS MATERIALIZED (
        SELECT f.practice_id, f.campaign_id, f.level, f.patient_id, f.day, GREATEST(
            lag(f.day) OVER (PARTITION BY f.campaign_id, f.patient_id, f.level ORDER BY f.day),
            f.known_before
        ) AS prev
        FROM fresh f
    ),
    -- Only the known day right after a new one can get a later previous day: the latest of
    -- the batch's days before it, if later than the one it had.
    followers AS MATERIALIZED (
        SELECT DISTINCT f.next_id AS id, f.next_tid AS tid, f.practice_id, f.campaign_id,
            f.level, f.patient_id, f.next_day AS day, f.next_prev AS prev_day
        FROM fresh f WHERE f.next_id IS NOT NULL
    ),
    moved AS MATERIALIZED (
        SELECT o.id, o.tid, o.practice_id, o.campaign_id, o.level, o.day, o.prev_day,
            GREATEST(o.prev_day, max(f.day)) AS prev
        FROM followers o
        JOIN fresh f ON f.campaign_id = o.campaign_id AND f.level = o.level
            AND f.patient_id = o.patient_id AND f.day < o.day
        GROUP BY o.id, o.tid, o.practice_id, o.campaign_id, o.level, o.day, o.prev_day
        HAVING GREATEST(o.prev_day, max(f.day)) IS DISTINCT FROM o.prev_day
        ORDER BY o.tid  -- rewritten in the order of the table's pages
    ),
    recipients_added AS (
        INSERT INTO {recipient_days}
            (practice_id, campaign_id, step_position, patient_id, day, prev_day)
        SELECT practice_id, campaign_id, level, patient_id, day, prev FROM added
        ORDER BY campaign_id, patient_id, level, day
    ),
    recipients_moved AS (
        -- By the row's address from the probe: a second index probe per row otherwise.
        UPDATE {recipient_days} r SET prev_day = m.prev FROM moved m WHERE r.ctid = m.tid
    ),
    gap_changes AS (
        SELECT practice_id, campaign_id, level, day, COALESCE(prev, %(no_prev)s) AS prev_day,
            1 AS delta
        FROM added
        UNION ALL
        SELECT practice_id, campaign_id, level, day, prev, 1 FROM moved
        UNION ALL
        SELECT practice_id, campaign_id, level, day, COALESCE(prev_day, %(no_prev)s), -1
        FROM moved
    ),
    gaps_added AS (
        INSERT INTO {day_gaps} AS t
            (practice_id, campaign_id, step_position, day, prev_day, count)
        SELECT practice_id, campaign_id, level, day, prev_day, sum(delta) FROM gap_changes
        GROUP BY practice_id, campaign_id, level, day, prev_day HAVING sum(delta) <> 0
        ON CONFLICT (campaign_id, step_position, day, prev_day)
        DO UPDATE SET count = t.count + excluded.count
    )
    SELECT (SELECT count(*) FROM claimed), COALESCE((
        SELECT json_agg(json_build_array(enrollment_id, new)) FROM counted
        WHERE experiment AND new & {arm_bits} <> 0
    ), '[]'::json)
    """  # noqa: S608 - table names and constants from the code, values as parameters
    with connection.cursor() as cursor:
        # For this transaction only: the batch's sorts and hash tables (about 100,000 recipient
        # days) fit in memory instead of spilling to temporary files; and each message's few
        # events are read by a plain index probe. Without statistics (a backfill right after a
        # migration or a restore) PostgreSQL expected hundreds of events per message and
        # planned a bitmap scan for each: a backfill of 1,000,000 messages took 5% longer.
        cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(sql, {"limit": limit, "in_flight": list(in_flight), "no_prev": NO_PREV_DAY})
        taken, arm_rows = cursor.fetchone()
    if isinstance(arm_rows, str):
        arm_rows = json.loads(arm_rows)
    return taken, [
        (enrollment, bool(new & fact.SENT), bool(new & fact.DELIVERED), bool(new & fact.CLICKED))
        for enrollment, new in arm_rows
    ]


def conversions_count(*, limit: int, goal_met: str, counters: list[str]) -> list[dict]:
    """Count up to ``limit`` pending enrollments' goals into the day counters; return the
    enrollments taken (``id``, ``practice_id``, ``experiment_period``). A goal met counts on
    the local day it was met, for the last step that went out before it (step 0 if none had)."""
    enrollments = Enrollment._meta.db_table
    messages = OutboundMessage._meta.db_table
    practices = Practice._meta.db_table
    day_stats = CampaignDayStat._meta.db_table
    others = [name for name in counters if name != "conversions"]
    sql = f"""
    WITH batch AS (
        SELECT id, practice_id, campaign_id, exit_reason, exited_at, experiment_period
        FROM {enrollments}
        WHERE report_pending
        ORDER BY id LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ),
    cleared AS (
        UPDATE {enrollments} e SET report_pending = false FROM batch b WHERE e.id = b.id
    ),
    goals AS (
        SELECT b.practice_id, b.campaign_id,
            (b.exited_at AT TIME ZONE p.time_zone)::date AS day,
            -- Only the enrollment's key is a condition: its few messages are found by the
            -- (enrollment, step) index whatever the planner knows of the statuses (a backfill
            -- on tables without statistics once picked the status index: 6 s a batch).
            COALESCE((
                SELECT max(o.step_position) FILTER (
                    WHERE o.status = ANY(%(sent)s) AND NOT o.is_test
                ) FROM {messages} o
                WHERE o.enrollment_id = b.id
            ), {NO_STEP}) AS step
        FROM batch b JOIN {practices} p ON p.id = b.practice_id
        WHERE b.exit_reason = %(goal_met)s AND b.exited_at IS NOT NULL
    ),
    added AS (
        INSERT INTO {day_stats} AS t
            (practice_id, campaign_id, step_position, day, {", ".join(others)}, conversions)
        SELECT practice_id, campaign_id, step, day, {", ".join(["0"] * len(others))}, count(*)
        FROM goals GROUP BY practice_id, campaign_id, step, day
        ON CONFLICT (campaign_id, step_position, day)
        DO UPDATE SET conversions = t.conversions + excluded.conversions
    )
    SELECT id, practice_id, experiment_period FROM batch
    """  # noqa: S608 - table names and constants from the code, values as parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, {"limit": limit, "sent": list(SENT_STATUSES), "goal_met": goal_met})
        return [
            {"id": pk, "practice_id": practice_id, "experiment_period": period}
            for pk, practice_id, period in cursor.fetchall()
        ]
