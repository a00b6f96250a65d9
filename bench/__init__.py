"""Journeyman's first benchmark: ingest throughput and journeys/s against a bare Temporal ceiling.

Run from the repository root with the project's environment: ``.venv/bin/python -m bench``
(``--quick`` for a smoke run, ``--help`` for the sizes). See ``bench/README.md``.
"""
