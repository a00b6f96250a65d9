"""Deterministic Temporal code: the journey interpreter workflow and its activities."""
