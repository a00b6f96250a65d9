-- Experiment and holdout reports, and the emotion curve: satisfaction answers counted per
-- stage and touchpoint as they arrive.

-- The holdout report compares one journey's treated and held-out runs by version; with the
-- outcome columns included it reads this index alone.
CREATE INDEX journey_runs_outcome ON journey_runs (journey_id, version, holdout)
    INCLUDE (status, entered_at, converted_at);

-- A satisfaction answer is attributed at ingest to the customer's active runs: found by
-- customer alone, as the answer names no journey.
CREATE INDEX journey_runs_active_customer ON journey_runs (customer_id) WHERE status = 'active';

-- Satisfaction answers per journey version, stage (where the run was when the answer arrived)
-- and touchpoint (the last message the run had sent before it), per measure: csat (1-5),
-- nps (0-10), score (1-10). Counted in the ingest transaction that stores the answer.
CREATE TABLE satisfaction_kpis (
    journey_id  text NOT NULL,
    version     text NOT NULL,
    stage       text NOT NULL,
    step_id     text NOT NULL,  -- '' when the run had sent no message before the answer
    measure     text NOT NULL CHECK (measure IN ('csat', 'nps', 'score')),
    answers     bigint NOT NULL DEFAULT 0,
    score_sum   numeric NOT NULL DEFAULT 0,  -- the answers' values as given, on their own scale
    promoters   bigint NOT NULL DEFAULT 0,   -- nps 9-10
    passives    bigint NOT NULL DEFAULT 0,   -- nps 7-8
    detractors  bigint NOT NULL DEFAULT 0,   -- nps 0-6
    rejected    bigint NOT NULL DEFAULT 0,   -- values out of range or not numbers: not counted
    PRIMARY KEY (journey_id, version, stage, step_id, measure)
);
