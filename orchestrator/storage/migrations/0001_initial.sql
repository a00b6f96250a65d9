-- Journeyman schema, first version. Migrations are applied in order at start-up and never edited
-- once released: change the schema with a new numbered file.

CREATE TABLE profiles (
    customer_id  text PRIMARY KEY,
    traits       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Every accepted event, once: message_id is the Segment spec's dedupe key.
CREATE TABLE events (
    id           bigserial PRIMARY KEY,
    message_id   text NOT NULL UNIQUE,
    type         text NOT NULL,
    customer_id  text NOT NULL,
    event        text,
    properties   jsonb NOT NULL DEFAULT '{}'::jsonb,
    traits       jsonb NOT NULL DEFAULT '{}'::jsonb,
    context      jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_customer ON events (customer_id, id);

-- Deployed journeys: every version is immutable and kept; `journeys` points at the active one.
CREATE TABLE journey_versions (
    journey_id   text NOT NULL,
    version      text NOT NULL,
    name         text NOT NULL,
    plan         jsonb NOT NULL,
    source       text NOT NULL,
    deployed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (journey_id, version)
);

CREATE TABLE journeys (
    journey_id      text PRIMARY KEY,
    active_version  text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (journey_id, active_version) REFERENCES journey_versions (journey_id, version)
);

-- One row per customer per journey: written by ingest when the customer enters (so later events
-- route to the run at once) and kept current by the workflow's transition activity.
CREATE TABLE journey_runs (
    journey_id   text NOT NULL,
    customer_id  text NOT NULL,
    version      text NOT NULL,
    workflow_id  text NOT NULL,
    stage        text,
    status       text NOT NULL DEFAULT 'entering'
                 CHECK (status IN ('entering', 'active', 'completed', 'exited')),
    entered_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (journey_id, customer_id)
);
CREATE INDEX journey_runs_stage ON journey_runs (journey_id, stage) WHERE status = 'active';

-- Events on their way to Temporal, written in the ingest transaction (nothing accepted is lost).
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_id      bigint NOT NULL REFERENCES events (id),
    journey_id    text NOT NULL,
    version       text NOT NULL,
    customer_id   text NOT NULL,
    workflow_id   text NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text
);
CREATE INDEX outbox_pending ON outbox (id) WHERE delivered_at IS NULL;

-- Each transition once (run_key, seq), counted into stage_kpis in the same transaction.
CREATE TABLE stage_transitions (
    run_key      text NOT NULL,
    seq          integer NOT NULL,
    journey_id   text NOT NULL,
    version      text NOT NULL,
    customer_id  text NOT NULL,
    from_stage   text,
    to_stage     text,
    outcome      text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_key, seq)
);

CREATE TABLE stage_kpis (
    journey_id  text NOT NULL,
    version     text NOT NULL,
    stage       text NOT NULL,
    entered     bigint NOT NULL DEFAULT 0,
    converted   bigint NOT NULL DEFAULT 0,
    moved_on    bigint NOT NULL DEFAULT 0,
    exited      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (journey_id, version, stage)
);

-- The delivery ledger: a row is claimed before the provider is called, so a retried or replayed
-- send finds it and never delivers twice.
CREATE TABLE deliveries (
    send_key             text PRIMARY KEY,
    journey_id           text NOT NULL,
    version              text NOT NULL,
    customer_id          text NOT NULL,
    step_id              text NOT NULL,
    channel              text NOT NULL,
    recipient            text,
    subject              text,
    status               text NOT NULL
                         CHECK (status IN ('sending', 'sent', 'failed', 'skipped', 'unknown')),
    reason               text,
    provider_message_id  text,
    attempts             integer NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_customer ON deliveries (customer_id);
