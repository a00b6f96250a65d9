-- In-app messages: what an in_app send leaves for a customer to see in a site or an app, until
-- they acknowledge it or it expires. send_key is the send's deterministic key (journey run,
-- step, iteration), so a retried send stores one message. The id is random, not a sequence:
-- it reaches browsers, and must say nothing about how many messages exist.
CREATE TABLE in_app_messages (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id      text NOT NULL,
    send_key         text NOT NULL UNIQUE,
    title            text NOT NULL DEFAULT '',
    body             text NOT NULL,
    data             jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    read_at          timestamptz,
    acknowledged_at  timestamptz,
    expires_at       timestamptz
);
-- A customer's pending messages, unread first, newest first: the order the listing pages in.
CREATE INDEX in_app_messages_pending
    ON in_app_messages (customer_id, (read_at IS NOT NULL), created_at DESC, id DESC)
    WHERE acknowledged_at IS NULL;
-- Every message of a customer in the same order (the administration view, erasure).
CREATE INDEX in_app_messages_customer
    ON in_app_messages (customer_id, (read_at IS NOT NULL), created_at DESC, id DESC);

-- Whether the browser routes require a signed per-customer token beside the write key. One row.
CREATE TABLE in_app_settings (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    require_token  boolean NOT NULL DEFAULT false,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO in_app_settings (singleton) VALUES (true);
