-- Erasure and identity merges find a customer's outbox rows, and erasure deletes the rows of
-- the events it deletes: without these, each does a full scan of the outbox per customer.
CREATE INDEX outbox_event ON outbox (event_id);
CREATE INDEX outbox_customer ON outbox (customer_id);
