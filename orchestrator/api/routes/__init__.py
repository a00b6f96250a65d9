"""HTTP routes: Segment-spec ingest under ``/v1``, administration under ``/api``, health."""
