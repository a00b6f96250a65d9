#!/bin/sh
# Runs once, when the Postgres volume is first initialised (docker-entrypoint-initdb.d).
# One role per consumer, each owning only its databases:
#   temporal    -> temporal, temporal_visibility  (the temporal service sets SKIP_DB_CREATE)
#   journeyman  -> journeyman                     (JOURNEYMAN_DATABASE_URL)
# Passwords come from the container environment (see deploy/example.env); psql quotes them.
set -eu

psql --no-psqlrc --set ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --set temporal_password="$TEMPORAL_DB_PASSWORD" \
    --set journeyman_password="$APP_DB_PASSWORD" <<'SQL'
CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;

CREATE ROLE journeyman LOGIN PASSWORD :'journeyman_password';
CREATE DATABASE journeyman OWNER journeyman;

REVOKE ALL ON DATABASE temporal, temporal_visibility, journeyman FROM PUBLIC;

-- Temporal's SQL visibility schema needs btree_gin; create it as superuser up front.
\connect temporal_visibility
CREATE EXTENSION IF NOT EXISTS btree_gin;
SQL
