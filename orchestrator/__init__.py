"""The engine's shell: journey language, ingest, storage, HTTP API, CLI and the embedded stack."""
