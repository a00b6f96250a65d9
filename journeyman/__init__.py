"""Journeyman: customer journeys as code, run on Temporal.

The engine's three packages live in the repository's top-level folders and are installed
under this one import root, so they never collide with other distributions that use the
same generic names (Django Channels installs a top-level ``channels``):

- ``journeyman.orchestrator``: the journey language, ingest, storage, API, CLI, embedded stack.
- ``journeyman.workflows``: the deterministic journey interpreter and its activities.
- ``journeyman.channels``: message rendering and the providers behind one protocol.
"""

__version__ = "0.1.0"
