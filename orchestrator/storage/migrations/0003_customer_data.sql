-- Customer data: the whole Segment spec in the event store, write keys per source, one identity
-- per person (aliases and recorded merges), segments with live membership, erasures.

-- Every Segment message type is stored; `customer_id` is the canonical customer the event
-- belongs to (rewritten when identities merge), the ids as sent are kept beside it.
ALTER TABLE events
    ADD COLUMN user_id       text,
    ADD COLUMN anonymous_id  text,
    ADD COLUMN sent_at       timestamptz,
    ADD COLUMN source_id     text;
CREATE INDEX events_customer_track ON events (customer_id, event, occurred_at) WHERE type = 'track';

-- Consent per channel (`{"email": true, "sms": false}`), kept apart from free-form traits.
ALTER TABLE profiles ADD COLUMN consent jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Write keys per source, stored as SHA-256 digests (keys are long random strings, so a fast
-- digest is enough); a revoked key stops working at once.
CREATE TABLE sources (
    source_id   text PRIMARY KEY,
    name        text NOT NULL,
    key_hash    text NOT NULL UNIQUE,
    key_hint    text NOT NULL,            -- the key's first characters, to tell keys apart
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Ids that now stand for another customer: an anonymous id joined to a user id on identify or
-- alias, or a known customer merged into another. Always points at the final customer.
CREATE TABLE customer_aliases (
    alias        text PRIMARY KEY,
    customer_id  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customer_aliases_customer ON customer_aliases (customer_id);

-- Every merge, as it happened: who into whom, why, and what moved.
CREATE TABLE customer_merges (
    id          bigserial PRIMARY KEY,
    from_id     text NOT NULL,
    into_id     text NOT NULL,
    reason      text NOT NULL CHECK (reason IN ('identify', 'alias', 'api')),
    message_id  text,
    moved       jsonb NOT NULL DEFAULT '{}'::jsonb,
    merged_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customer_merges_into ON customer_merges (into_id);

-- Segments and personas deployed from files beside the journeys; each deploy of a changed
-- definition gets a new version (a content hash), like journeys.
CREATE TABLE segments (
    segment_id   text PRIMARY KEY,
    version      text NOT NULL,
    name         text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('segment', 'persona')),
    definition   jsonb NOT NULL,
    source       text NOT NULL,
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    deployed_at  timestamptz NOT NULL DEFAULT now()
);

-- Who is in each segment now; entering and leaving are also stored as events.
CREATE TABLE segment_memberships (
    segment_id   text NOT NULL,
    customer_id  text NOT NULL,
    entered_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (segment_id, customer_id)
);
CREATE INDEX segment_memberships_customer ON segment_memberships (customer_id);

-- That an erasure happened, without keeping whom it erased: the id is stored as a digest so a
-- later request can be matched, never read back.
CREATE TABLE erasures (
    id             bigserial PRIMARY KEY,
    customer_hash  text NOT NULL,
    erased         jsonb NOT NULL,
    erased_at      timestamptz NOT NULL DEFAULT now()
);
