-- The full journey language: journey status, journey goals, holdouts, migrations, experiments,
-- frequency caps and throttles.

-- A paused journey admits no one and holds its customers at their next send; an archived one
-- admits no one and its customers leave at their next send.
ALTER TABLE journeys ADD COLUMN status text NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'paused', 'archived'));

-- goal: left the stage because the journey's conversion goal was reached;
-- migrated: moved to another version by an explicit migration.
ALTER TABLE stage_kpis
    ADD COLUMN goal bigint NOT NULL DEFAULT 0,
    ADD COLUMN migrated bigint NOT NULL DEFAULT 0;

-- A customer may have several runs of one journey (re-entry after a cool-down, concurrent runs
-- keyed by an entry event property such as the cart id): a run is its workflow id.
ALTER TABLE journey_runs
    ADD COLUMN converted_at timestamptz,
    ADD COLUMN holdout boolean NOT NULL DEFAULT false,
    ADD COLUMN entry_key text;
ALTER TABLE journey_runs DROP CONSTRAINT journey_runs_pkey;
ALTER TABLE journey_runs ADD PRIMARY KEY (workflow_id);
CREATE INDEX journey_runs_customer ON journey_runs (journey_id, customer_id);
CREATE INDEX journey_runs_entered ON journey_runs (journey_id, entered_at);
ALTER TABLE journey_runs DROP CONSTRAINT journey_runs_status_check;
ALTER TABLE journey_runs ADD CONSTRAINT journey_runs_status_check
    CHECK (status IN ('entering', 'active', 'completed', 'exited', 'converted'));

-- capped: not sent because the customer reached a frequency cap.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('sending', 'sent', 'failed', 'skipped', 'unknown', 'capped'));
-- Frequency caps count a customer's recent messages per channel; throttles a journey's.
CREATE INDEX deliveries_recent ON deliveries (customer_id, channel, created_at);
CREATE INDEX deliveries_journey_recent ON deliveries (journey_id, created_at);

-- Which variant each entrant of an experiment got, and the winner once decided.
CREATE TABLE experiment_assignments (
    journey_id   text NOT NULL,
    step_id      text NOT NULL,
    customer_id  text NOT NULL,
    variant      text NOT NULL,
    assigned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (journey_id, step_id, customer_id)
);

CREATE TABLE experiment_decisions (
    journey_id  text NOT NULL,
    step_id     text NOT NULL,
    winner      text NOT NULL,
    results     jsonb NOT NULL,
    decided_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (journey_id, step_id)
);

-- Explicit migrations of waiting customers between versions: asked for, then reported.
CREATE TABLE journey_migrations (
    id            bigserial PRIMARY KEY,
    journey_id    text NOT NULL,
    from_version  text NOT NULL,
    to_version    text NOT NULL,
    steps         jsonb NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    report        jsonb
);

-- Each firing of a scheduled entry, once: the row is claimed before the audience is scanned,
-- so one scheduler runs it; an unfinished one is resumed after a restart (entries dedupe).
CREATE TABLE schedule_firings (
    journey_id   text NOT NULL,
    fire_at      timestamptz NOT NULL,
    version      text NOT NULL,
    admitted     integer NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    PRIMARY KEY (journey_id, fire_at)
);
