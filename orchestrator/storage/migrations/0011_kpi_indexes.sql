-- Touchpoint KPIs, time to convert and trends read one journey's stage transitions, by time
-- range for trends: without this index each of them scans every journey's transitions.
CREATE INDEX stage_transitions_journey_at ON stage_transitions (journey_id, at);
