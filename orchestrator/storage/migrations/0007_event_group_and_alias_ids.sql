-- The account a `group` call names and the id an `alias` call joins, kept as sent.
ALTER TABLE events
    ADD COLUMN group_id     text,
    ADD COLUMN previous_id  text;
