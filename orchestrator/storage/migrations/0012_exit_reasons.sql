-- Why customers leave a stage without converting, and cohorts by entry week. Both are counters
-- bumped in the transaction that records each transition (orchestrator/storage/runs.py), so a
-- report reads a few rows; what came before is backfilled from the transitions below.

-- Leaving without converting (moved_on, exited, migrated): why, and the words behind it (an
-- exit step's text, the exit event, the goto step). Empty for other transitions.
ALTER TABLE stage_transitions
    ADD COLUMN reason text,
    ADD COLUMN reason_detail text;

-- Per stage left, outcome and reason, held-out and treated customers apart. `version` is the
-- version whose stage was left (for a migration, the old one), as in stage_kpis, so for a stage
-- the sum over an outcome equals that column of stage_kpis.
CREATE TABLE stage_exit_kpis (
    journey_id  text NOT NULL,
    version     text NOT NULL,
    stage       text NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('moved_on', 'exited', 'migrated')),
    reason      text NOT NULL,
    detail      text NOT NULL DEFAULT '',
    holdout     boolean NOT NULL,
    customers   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (journey_id, version, stage, outcome, reason, detail, holdout)
);

-- Per ISO week (its Monday, UTC) in which runs entered, the version they entered with, and a
-- stage: runs that entered the journey into it, reached it (once per run), and ended while
-- leaving it converted (the journey's goal, or converting out of the last stage), exited, or
-- completed (moved on past the last stage without converting).
CREATE TABLE stage_cohort_kpis (
    journey_id   text NOT NULL,
    cohort_week  date NOT NULL,
    version      text NOT NULL,
    stage        text NOT NULL,
    entered      bigint NOT NULL DEFAULT 0,
    reached      bigint NOT NULL DEFAULT 0,
    converted    bigint NOT NULL DEFAULT 0,
    exited       bigint NOT NULL DEFAULT 0,
    completed    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (journey_id, cohort_week, version, stage)
);

-- Backfill. Earlier transitions did not say why: a migration is known to be one, and the exits
-- that erasure recorded carry its run key form (`<workflow id>@erased/<uuid>`); the rest is
-- 'unknown'.
UPDATE stage_transitions
SET reason = CASE
    WHEN outcome = 'migrated' THEN 'migration'
    WHEN run_key LIKE '%@erased/%' THEN 'erasure'
    ELSE 'unknown'
END
WHERE from_stage IS NOT NULL AND outcome IN ('moved_on', 'exited', 'migrated');

-- The stage left belongs to the version of the run's previous transition (a migration's row
-- carries the new version); held-out runs are known from journey_runs (run key = workflow id,
-- '@', Temporal run id).
WITH ordered AS (
    SELECT run_key, journey_id, version, from_stage, outcome, reason,
           lag(version) OVER (PARTITION BY run_key ORDER BY seq) AS version_before
    FROM stage_transitions
)
INSERT INTO stage_exit_kpis (journey_id, version, stage, outcome, reason, holdout, customers)
SELECT o.journey_id, coalesce(o.version_before, o.version), o.from_stage, o.outcome, o.reason,
       coalesce(r.holdout, false), count(*)
FROM ordered o
LEFT JOIN journey_runs r ON r.workflow_id = substring(o.run_key FROM '^(.*)@[^@]*$')
WHERE o.from_stage IS NOT NULL AND o.outcome IN ('moved_on', 'exited', 'migrated')
GROUP BY 1, 2, 3, 4, 5, 6;

-- What the counters hold beyond the transitions still stored (erased customers' rows are
-- gone, their counts are not): counted as 'unknown', so every stage adds up as before.
WITH totals AS (
    SELECT k.journey_id, k.version, k.stage, o.outcome, o.total
    FROM stage_kpis k,
         LATERAL (VALUES ('moved_on', k.moved_on), ('exited', k.exited),
                         ('migrated', k.migrated)) AS o (outcome, total)
), counted AS (
    SELECT journey_id, version, stage, outcome, sum(customers) AS customers
    FROM stage_exit_kpis
    GROUP BY 1, 2, 3, 4
)
INSERT INTO stage_exit_kpis (journey_id, version, stage, outcome, reason, holdout, customers)
SELECT t.journey_id, t.version, t.stage, t.outcome,
       CASE WHEN t.outcome = 'migrated' THEN 'migration' ELSE 'unknown' END, false,
       t.total - coalesce(c.customers, 0)
FROM totals t
LEFT JOIN counted c USING (journey_id, version, stage, outcome)
WHERE t.total > coalesce(c.customers, 0)
ON CONFLICT (journey_id, version, stage, outcome, reason, detail, holdout)
DO UPDATE SET customers = stage_exit_kpis.customers + excluded.customers;

-- Cohorts of the runs whose entry is still stored: their week is the week of that entry.
WITH runs AS (
    SELECT run_key, journey_id, version, to_stage AS first_stage,
           date_trunc('week', at AT TIME ZONE 'UTC')::date AS cohort_week
    FROM stage_transitions
    WHERE seq = 1 AND from_stage IS NULL AND outcome = 'entered' AND to_stage IS NOT NULL
), counted AS (
    SELECT journey_id, cohort_week, version, first_stage AS stage, 'entered' AS kind
    FROM runs
    UNION ALL
    SELECT journey_id, cohort_week, version, stage, 'reached'
    FROM (
        SELECT DISTINCT r.run_key, r.journey_id, r.cohort_week, r.version, t.to_stage AS stage
        FROM runs r JOIN stage_transitions t ON t.run_key = r.run_key
        WHERE t.to_stage IS NOT NULL
    ) visits
    UNION ALL
    SELECT r.journey_id, r.cohort_week, r.version, t.from_stage,
           CASE t.outcome WHEN 'exited' THEN 'exited' WHEN 'moved_on' THEN 'completed'
                ELSE 'converted' END
    FROM runs r JOIN stage_transitions t ON t.run_key = r.run_key
    WHERE t.to_stage IS NULL AND t.from_stage IS NOT NULL
      AND t.outcome IN ('goal', 'converted', 'exited', 'moved_on')
)
INSERT INTO stage_cohort_kpis
    (journey_id, cohort_week, version, stage, entered, reached, converted, exited, completed)
SELECT journey_id, cohort_week, version, stage,
       count(*) FILTER (WHERE kind = 'entered'),
       count(*) FILTER (WHERE kind = 'reached'),
       count(*) FILTER (WHERE kind = 'converted'),
       count(*) FILTER (WHERE kind = 'exited'),
       count(*) FILTER (WHERE kind = 'completed')
FROM counted
GROUP BY 1, 2, 3, 4;
