-- Delivery states after the send: what the providers' webhooks report about each message.
--
-- queued, sent, delivered, opened, clicked: the message's progress (a state only moves
-- forward); bounced, complained, failed (with the reason) and suppressed (with the rule):
-- final. The send path's own words stay valid: sending (claimed, the provider call under way),
-- unknown (an earlier attempt may have reached the provider), and skipped and capped, which
-- are suppressions by a journey's rule (quiet hours, no address, a frequency cap).
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('sending', 'unknown', 'queued', 'sent', 'delivered', 'opened', 'clicked',
                      'bounced', 'complained', 'failed', 'suppressed', 'skipped', 'capped'));

-- When the provider first reported each fact, whatever the state became.
ALTER TABLE deliveries
    ADD COLUMN delivered_at  timestamptz,
    ADD COLUMN opened_at     timestamptz,
    ADD COLUMN clicked_at    timestamptz,
    ADD COLUMN bounced_at    timestamptz,
    ADD COLUMN complained_at timestamptz;

-- Webhooks find their message by the id the provider gave it (Twilio's MessageSid,
-- SendGrid's X-Message-Id) ...
CREATE INDEX deliveries_provider_message ON deliveries (provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- ... or by the Message-ID header Journeyman wrote, which SendGrid hands back in the event's
-- custom arguments. Its local part is this digest of the send key (journeyman.channels
-- message_id_for), so the row is found even before the provider's own id is recorded.
-- convert_to with a fixed target encoding depends only on its input: safe to index.
CREATE FUNCTION delivery_message_digest(send_key text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT left(encode(sha256(convert_to(send_key, 'UTF8')), 'hex'), 40) $$;
CREATE INDEX deliveries_message_digest ON deliveries (delivery_message_digest(send_key));

-- Every provider event once, whether or not it changed the state. Providers retry their
-- webhooks; the (provider, event_id) key makes a retried event a no-op. Only a digest of the
-- payload is kept: it holds addresses, IP addresses and user agents.
CREATE TABLE delivery_events (
    provider             text NOT NULL,          -- sendgrid, twilio
    event_id             text NOT NULL,          -- sg_event_id; MessageSid/MessageStatus
    send_key             text,                   -- NULL until a delivery matches
    provider_message_id  text,
    event                text NOT NULL,          -- the provider's word: open, undelivered
    state                text,                   -- the state it stands for; NULL: recorded only
    reason               text,
    occurred_at          timestamptz NOT NULL,
    received_at          timestamptz NOT NULL DEFAULT now(),
    payload_sha256       text NOT NULL,
    PRIMARY KEY (provider, event_id)
);
CREATE INDEX delivery_events_send_key ON delivery_events (send_key, occurred_at)
    WHERE send_key IS NOT NULL;
-- Events that came before the send path recorded the provider's id wait here for it.
CREATE INDEX delivery_events_waiting ON delivery_events (provider_message_id)
    WHERE send_key IS NULL;
