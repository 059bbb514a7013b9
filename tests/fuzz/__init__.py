"""Hypothesis fuzzing of the real gateway over raw sockets (`make fuzz` runs the large profile)."""
