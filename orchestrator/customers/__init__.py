"""Customer data: one identity per person, profile metrics, segments and personas, erasure."""
