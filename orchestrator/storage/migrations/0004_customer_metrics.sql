-- Behavioural metrics per customer, kept current as events arrive (never by nightly batch).
-- Class thresholds live in configuration; the classes are stored so segments, journeys and
-- the recency sweep read them without recomputing.
CREATE TABLE customer_metrics (
    customer_id           text PRIMARY KEY,
    -- monetary
    order_count           integer NOT NULL DEFAULT 0,
    revenue_total         numeric NOT NULL DEFAULT 0,
    first_order_at        timestamptz,
    last_order_at         timestamptz,
    categories            jsonb NOT NULL DEFAULT '{}'::jsonb,  -- category -> units bought
    products              jsonb NOT NULL DEFAULT '{}'::jsonb,  -- product id -> units bought
    -- interaction mode
    last_seen_at          timestamptz,                         -- latest event of any kind
    channels              jsonb NOT NULL DEFAULT '{}'::jsonb,  -- channel -> events
    devices               jsonb NOT NULL DEFAULT '{}'::jsonb,  -- device type -> events
    last_channel          text,
    last_device           text,
    last_satisfaction     numeric,
    last_satisfaction_at  timestamptz,
    -- classes
    frequency_class       text NOT NULL DEFAULT 'none'
                          CHECK (frequency_class IN ('none', 'sporadic', 'regular', 'loyal', 'vip')),
    recency_class         text NOT NULL DEFAULT 'active'
                          CHECK (recency_class IN ('active', 'inactive', 'lost')),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
-- The recency sweep looks for customers whose last activity has aged past a threshold.
CREATE INDEX customer_metrics_recency ON customer_metrics (recency_class, last_seen_at);
