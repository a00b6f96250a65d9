-- How far the sweep has filled each segment's membership for its current version: a newly
-- deployed or changed segment is filled for every customer once (resumable by cursor),
-- then kept live by ingest.
ALTER TABLE segments
    ADD COLUMN filled_version  text,
    ADD COLUMN fill_cursor     text;
