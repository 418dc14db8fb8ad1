"""Wikimedia Commons at the network edge: the Action API client, image downloads from
allow-listed origins, and the rate limiter every process shares."""
