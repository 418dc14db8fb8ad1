"""Dashboard test data: POIs in lists with scored candidates, as a finished run leaves them."""

from __future__ import annotations

from collections.abc import Callable

from cities.models import City, PoiList, PointOfInterest, Validation
from image_ranking.models import Candidate, PoiRanking

CATEGORIES = ["see", "eat", "drink", "sleep", "shop", "play"]


def default_thumb(poi_index: int, rank: int) -> tuple[str, str]:
    base = "https://upload.wikimedia.org/wikipedia/commons"
    name = f"POI_{poi_index}_{rank}.jpg"
    return f"{base}/a/ab/{name}", f"{base}/thumb/a/ab/{name}/330px-{name}"


def make_pois(
    n_pois: int,
    n_candidates: int = 3,
    *,
    city_name: str = "Lisbon",
    list_title: str = "Highlights",
    image_every: int = 3,
    flag_every: int = 5,
    urls: Callable[[int, int], tuple[str, str]] = default_thumb,
    bulk: bool = False,
    origin: str = PoiRanking.Origin.PIPELINE,
) -> tuple[City, PoiList, list[PointOfInterest]]:
    """`n_pois` POIs in one list; every `image_every`-th has an image (stored from `origin`,
    by default the pipeline's winner), every `flag_every`-th POI without one is flagged (a
    below_threshold Validation); each has `n_candidates` scored candidates (the best one the
    winner)."""
    city, _ = City.objects.get_or_create(
        name=city_name, defaults={"latitude": 38.72, "longitude": -9.14}
    )
    poi_list = PoiList.objects.create(title=list_title, city=city)
    pois = [
        PointOfInterest(
            city=city,
            name=f"{city_name} sight {i:05d}",
            category=CATEGORIES[i % len(CATEGORIES)],
            latitude=38.72,
            longitude=-9.14,
            image_file=f"cities/images/pois/{city_name.lower()}/sight-{i}.jpg"
            if image_every and i % image_every == 0
            else "",
        )
        for i in range(n_pois)
    ]
    if bulk:
        PointOfInterest.objects.bulk_create(pois, batch_size=1000)
        pois = list(PointOfInterest.objects.filter(city=city).order_by("pk"))[-n_pois:]
    else:
        for poi in pois:
            poi.save()
    poi_list.pois.add(*pois)
    candidates, rankings = [], []
    for i, poi in enumerate(pois):
        flagged = bool(flag_every) and i % flag_every == 0 and not poi.image_file
        best = None
        for rank in range(1, n_candidates + 1):
            image_url, thumb_url = default_thumb(i, rank) if urls is None else urls(i, rank)
            score = round(7.2 - 0.4 * rank + (i % 7) * 0.05 - (2.5 if flagged else 0), 2)
            eligible = rank != n_candidates or n_candidates < 3
            best = score if best is None and eligible else best
            candidates.append(
                Candidate(
                    poi=poi,
                    search_rank=rank,
                    title=f"File:{poi.name} {rank}.jpg",
                    image_url=image_url,
                    thumb_url=thumb_url,
                    width=4000,
                    height=3000,
                    mime="image/jpeg",
                    distance_km=0.3 * rank if eligible else 12.5,
                    eligible=eligible,
                    ineligible_reason="" if eligible else "12.5 km from the POI (max 5 km)",
                    score=score,
                    score_std=1.4,
                    model_name="nima",
                    is_winner=rank == 1 and not flagged,
                )
            )
        rankings.append(
            PoiRanking(
                poi=poi,
                status=PoiRanking.Status.FLAGGED
                if flagged
                else (PoiRanking.Status.UPDATED if poi.image_file else PoiRanking.Status.RANKED),
                best_score=best,
                threshold=4.5,
                model_name="nima",
                reason="best score 4.30 is below the threshold 4.50" if flagged else "",
                image_origin=origin if poi.image_file else PoiRanking.Origin.EXISTING,
                validation=Validation.objects.create(
                    parent=city,
                    context="image_ranking",
                    aggregate="below_threshold",
                    description=f"{poi.name}: best score 4.30 is below the threshold 4.50",
                )
                if flagged
                else None,
            )
        )
    Candidate.objects.bulk_create(candidates, batch_size=1000)
    PoiRanking.objects.bulk_create(rankings, batch_size=1000)
    return city, poi_list, pois


def make_run(
    pois: list[PointOfInterest],
    outcomes: list[str],
    *,
    status: str = "running",
    kind: str = "batch",
    scope: str = "missing",
    threshold: float | None = 4.5,
):
    """A run with one item per POI in the given outcomes (as the pipeline records them)."""
    from django.utils import timezone

    from image_ranking.models import FINAL_OUTCOMES, RankingRun, RankingRunItem

    active = status in RankingRun.ACTIVE
    run = RankingRun.objects.create(
        kind=kind, scope=scope, status=status, threshold=threshold, started_at=timezone.now()
    )
    if active:
        key = f"poi:{pois[0].pk}" if kind == "poi" else f"{scope}:*"
        RankingRun.objects.filter(pk=run.pk).update(active_key=key)
        run.refresh_from_db()
    now = timezone.now()
    RankingRunItem.objects.bulk_create(
        [
            RankingRunItem(
                run=run,
                poi=poi,
                outcome=outcome,
                started_at=now if outcome != "pending" else None,
                finished_at=now if outcome in FINAL_OUTCOMES else None,
            )
            for poi, outcome in zip(pois, outcomes, strict=True)
        ]
    )
    return run


def make_usable_candidate(commons_server) -> tuple[PointOfInterest, Candidate]:
    """A POI without an image whose last candidate is a real file on the Commons stand-in,
    so "Use this image" can download it."""
    from tests.fakes.images import jpeg_bytes

    file = commons_server.add_file("Chosen.jpg", jpeg_bytes("coffee", width=1600))
    _, _, (poi,) = make_pois(1, 2, image_every=0, flag_every=0)
    cand = Candidate.objects.filter(poi=poi).order_by("search_rank").last()
    Candidate.objects.filter(pk=cand.pk).update(
        image_url=commons_server.url_for_original(file),
        thumb_url=commons_server.url_for_thumb(file, 330),
        width=file.width,
        height=file.height,
    )
    cand.refresh_from_db()
    return poi, cand
