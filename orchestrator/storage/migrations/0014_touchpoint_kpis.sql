-- Touchpoint KPIs may count page and screen views (a website's visits, an app's screens) of
-- the customers a journey reached: read by customer and time, as tracked events are by
-- events_customer_track (0003). Without this index each customer's whole history is read.
CREATE INDEX events_customer_views ON events (customer_id, occurred_at)
    WHERE type IN ('page', 'screen');
