"""The per-POI pipeline: rank one POI, store its winner, flag it, or give it a fallback image,
under the POI's claim."""
