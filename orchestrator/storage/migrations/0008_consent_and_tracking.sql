-- Consent and tracking: each customer's choice per subscription group, and the suppression
-- list. Opens, clicks and unsubscribes are stored as events (`Email Opened`, `Link Clicked`,
-- `Unsubscribed`, `Subscribed`) through ingest, so they need no table of their own.

-- A customer's latest choice per subscription group ("email:marketing"); no row: the group's
-- default (opt-out groups: subscribed; opt-in groups: not).
CREATE TABLE subscription_preferences (
    customer_id  text NOT NULL,
    group_key    text NOT NULL,             -- "<channel>:<group>"
    subscribed   boolean NOT NULL,
    source       text NOT NULL,             -- one_click, preference_page, api, import
    send_key     text,                      -- the message whose link was used, if any
    changes      integer NOT NULL DEFAULT 1, -- how often the choice changed (event ids use it)
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, group_key)
);

-- Addresses and customers not to send to on a channel. A row with a group_key covers that
-- group only (an unsubscribe); one without covers every message on the channel (bounces,
-- complaints, manual blocks).
CREATE TABLE suppressions (
    id           bigserial PRIMARY KEY,
    channel      text NOT NULL,
    address      text,                      -- normalised (trimmed, lower case)
    customer_id  text,
    group_key    text,
    reason       text NOT NULL
                 CHECK (reason IN ('bounce', 'complaint', 'unsubscribe', 'manual')),
    send_key     text,                      -- the message that led to it, if one did
    detail       text,                      -- the provider's words for a bounce or complaint
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (address IS NOT NULL OR customer_id IS NOT NULL)
);
-- The same suppression is recorded once (the first one stays).
CREATE UNIQUE INDEX suppressions_once ON suppressions
    (channel, coalesce(address, ''), coalesce(customer_id, ''), coalesce(group_key, ''), reason);
CREATE INDEX suppressions_address ON suppressions (channel, address) WHERE address IS NOT NULL;
CREATE INDEX suppressions_customer ON suppressions (customer_id) WHERE customer_id IS NOT NULL;
