"""Ranking runs: which POIs, one Django-Q task each, and how a run ends."""
