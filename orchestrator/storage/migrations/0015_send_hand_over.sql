-- When a send's message was handed to its provider. A claim without it never reached the
-- provider (the worker died while composing), so a retry may send it; with it, a provider
-- that takes no idempotency key may have the message, and the send is recorded as unknown.
ALTER TABLE deliveries ADD COLUMN handed_over_at timestamptz;

-- Claims in flight when this runs were made before hand-overs were marked: they may have
-- reached their provider, so they are treated as handed over.
UPDATE deliveries SET handed_over_at = updated_at WHERE status = 'sending';
