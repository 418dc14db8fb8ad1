"""Models of the image-ranking feature (one module per subject, imported from here).

- `RankingRun`: one "rank missing/all" request (or one POI's re-rank).
- `RankingRunItem`: what happened to one POI in one run; a run's progress is a query over them.
- `PoiRanking`: the latest ranking state of one POI (status, image origin, flag, job claim).
- `RankablePoi`: PointOfInterest with the one definition of each state ("in lists", "missing",
  "flagged", ...) as QuerySet methods; every caller uses them.
- `Candidate`: a Commons image found for a POI, with its score (dashboard + training data).
- `ImageTrainingData`: a curator's good/bad label of one image of one POI (the spec's model).
- `RateLimitBucket` / `RateLimitSlot`: the token bucket and the in-flight slots shared by every
  process through the database (Wikimedia's limits hold for the whole deployment).
"""

from image_ranking.models.labels import AdoptedThreshold, ImageTrainingData
from image_ranking.models.ranking import Candidate, PoiRanking
from image_ranking.models.ratelimit import RateLimitBucket, RateLimitSlot, RateLimitTicket
from image_ranking.models.runs import (
    FINAL_OUTCOMES,
    OPEN_OUTCOMES,
    RankingRun,
    RankingRunItem,
    RunTally,
    Scope,
)
from image_ranking.models.states import RANKED_STATUSES, RankablePoi, RankablePoiQuerySet

__all__ = [
    "FINAL_OUTCOMES",
    "OPEN_OUTCOMES",
    "RANKED_STATUSES",
    "AdoptedThreshold",
    "Candidate",
    "ImageTrainingData",
    "PoiRanking",
    "RankablePoi",
    "RankablePoiQuerySet",
    "RankingRun",
    "RankingRunItem",
    "RateLimitBucket",
    "RateLimitSlot",
    "RateLimitTicket",
    "RunTally",
    "Scope",
]
