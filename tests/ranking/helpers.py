"""Odd image files a Commons upload can be, and a fixed scorer for control-flow tests."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tests.fakes.images import encode, jpeg_bytes, photo


def scaled(name: str, width: int, degraded: str | None = None) -> bytes:
    return jpeg_bytes(name, degraded=degraded, width=width)


def cmyk_jpeg(name: str = "coffee") -> bytes:
    return encode(photo(name).convert("CMYK"), "JPEG")


def png16(name: str = "coffee") -> bytes:
    grey = np.asarray(photo(name).convert("L"), dtype=np.uint16) * 257
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")  # mode I;16
    return buffer.getvalue()


def palette_png_with_transparency(name: str = "chelsea") -> bytes:
    image = photo(name).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=0)
    return buffer.getvalue()


def animated_gif(names=("rocket", "coffee")) -> bytes:
    frames = [photo(n).resize((400, 300)) for n in names]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=200)
    return buffer.getvalue()


def exif_rotated_jpeg(name: str = "rocket") -> bytes:
    """A landscape photo stored sideways with EXIF orientation 6 (shown upright = landscape)."""
    image = photo(name).transpose(Image.Transpose.ROTATE_90)  # stored as portrait
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def bomb_png(side: int = 12_000) -> bytes:
    """A 144-megapixel PNG of a few kilobytes: decoding it would take gigabytes."""
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@dataclass
class FixedScorer:
    """A deterministic scorer for control-flow tests only (claims, counters), where the model's
    opinion is irrelevant and its load time would only slow the concurrency test down."""

    value: float = 6.0
    name: str = "fixed"

    def score(self, images):
        from image_ranking.scoring import ScoreResult

        return [ScoreResult(score=self.value, std=1.0) for _ in images]


def store_bytes(poi, data: bytes, origin: str = "") -> None:
    """Store `data` as the POI's image the way the pipeline does: prepared in memory, written
    under a free name, then switched in with its origin by `outcome.record`, under the POI's
    claim. Raises StorageError as the pipeline's storage does."""
    from image_ranking.pipeline import outcome, storage
    from image_ranking.pipeline.claims import holding

    with holding(poi) as (_ranking, token):
        name = storage.write_file(poi, storage.prepare_bytes(data))
        image = outcome.NewImage(name, origin)
        outcome.record(poi, token, outcome.Decision("", "", flag="", image=image))
    poi.refresh_from_db()


def flags_of(poi) -> list[str]:
    """The POI's open image-ranking flags (its PoiRanking's link), as aggregates; [] or one."""
    from image_ranking.models import PoiRanking

    ranking = PoiRanking.objects.select_related("validation").filter(poi=poi).first()
    return [ranking.validation.aggregate] if ranking and ranking.validation else []


def flag_rows(poi) -> list:
    """The POI's open image-ranking flag rows (Validation), through its PoiRanking's link."""
    from image_ranking.models import PoiRanking

    ranking = PoiRanking.objects.select_related("validation").filter(poi=poi).first()
    return [ranking.validation] if ranking and ranking.validation else []
