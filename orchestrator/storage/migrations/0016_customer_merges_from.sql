-- The customer view and erasure find merges by either side: from_id had no index, so each
-- look-up read every merge ever recorded.
CREATE INDEX customer_merges_from ON customer_merges (from_id);
