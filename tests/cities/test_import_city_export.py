"""import_city_export: counts match the file, re-imports change nothing, bad files write nothing."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from cities.models import City, District, PoiList, PointOfInterest
from cities.services.city_import import CityExportError, import_city_export, load_export
from tests.conftest import CITY_EXPORTS_DIR, DEMO_EXPORTS

pytestmark = pytest.mark.django_db

ROME = next(p for p in DEMO_EXPORTS if p.name == "rome.json")


def snapshot() -> dict:
    return {
        "cities": list(City.objects.values_list("name", "country", "updated_at")),
        "districts": list(District.objects.values_list("name", "parent_district", "updated_at")),
        "pois": list(PointOfInterest.objects.values_list("source_id", "name", "updated_at")),
        "lists": list(PoiList.objects.values_list("title", "updated_at")),
        "members": sorted(
            PoiList.pois.through.objects.values_list("poilist_id", "pointofinterest_id")
        ),
    }


def expected_counts(data: dict) -> dict:
    poi_ids = {p["id"] for p in data["points_of_interest"]}
    poi_ids |= {p["id"] for pl in data["poi_lists"] for p in pl["pois"]}
    return {
        "pois": len(poi_ids),
        "lists": len(data["poi_lists"]),
        "members": sum(len({p["id"] for p in pl["pois"]}) for pl in data["poi_lists"]),
        "districts": len(data["districts"]),
    }


def test_demo_export_is_imported_with_the_files_counts():
    data = json.loads(ROME.read_text())
    call_command("import_city_export", str(ROME), "--no-progress")
    expected = expected_counts(data)
    city = City.objects.get(name="Rome")
    assert city.points_of_interest.count() == expected["pois"]
    assert city.poi_lists.count() == expected["lists"]
    assert PoiList.pois.through.objects.count() == expected["members"]
    assert city.districts.count() == expected["districts"]
    in_lists = PointOfInterest.objects.filter(lists__isnull=False).distinct()
    assert in_lists.count() == len({p["id"] for pl in data["poi_lists"] for p in pl["pois"]})


def test_second_import_changes_nothing(capsys):
    call_command("import_city_export", str(ROME), "--no-progress")
    before = snapshot()
    call_command("import_city_export", str(ROME), "--no-progress")
    assert snapshot() == before
    assert "unchanged: Rome" in capsys.readouterr().out


def test_updated_export_updates_in_place():
    data = json.loads(ROME.read_text())
    import_city_export(data)
    poi_count = PointOfInterest.objects.count()
    updated = copy.deepcopy(data)
    first = updated["points_of_interest"][0]
    first["name"] = "Renamed Place"
    first["latitude"] = 41.9
    dropped = updated["poi_lists"][0]["pois"].pop()

    summary = import_city_export(updated)

    assert PointOfInterest.objects.count() == poi_count
    poi = PointOfInterest.objects.get(source_id=first["id"])
    assert (poi.name, poi.latitude) == ("Renamed Place", 41.9)
    poi_list = PoiList.objects.get(title=updated["poi_lists"][0]["title"])
    assert not poi_list.pois.filter(source_id=dropped["id"]).exists()
    assert summary.updated["poi"] >= 1 and summary.updated["list"] == 1


def test_district_parents_are_linked():
    data = {
        "city": {"name": "Testville"},
        "districts": [
            {"name": "Borough", "parent_district": None},
            {"name": "Quarter", "parent_district": "Borough"},
        ],
        "points_of_interest": [
            {"id": 1, "name": "Tower", "category": "see", "district": "Quarter"}
        ],
        "poi_lists": [],
    }
    import_city_export(data)
    quarter = District.objects.get(name="Quarter")
    assert quarter.parent_district.name == "Borough"
    assert PointOfInterest.objects.get().district == quarter


def test_export_image_linked_only_when_the_file_exists(media_root):
    data = json.loads(ROME.read_text())
    poi_row = data["points_of_interest"][0]
    poi_row["image_url"] = "Rome/media/cities/images/pois/rome/present.jpg"
    data["points_of_interest"][1]["image_url"] = "Rome/media/cities/images/pois/rome/absent.jpg"
    target = media_root / "cities/images/pois/rome/present.jpg"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"jpeg")

    summary = import_city_export(data)

    assert PointOfInterest.objects.get(source_id=poi_row["id"]).image_file.name == (
        "cities/images/pois/rome/present.jpg"
    )
    assert summary.images_linked == 1 and summary.images_not_found == 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("poi_lists"), "missing top-level key 'poi_lists'"),
        (lambda d: d["city"].pop("name"), "'city.name' must be text"),
        (lambda d: d["points_of_interest"][3].update(category="museum"), "points_of_interest[3]"),
        (lambda d: d["points_of_interest"][2].update(id="x"), "'id' must be an integer"),
        (lambda d: d["points_of_interest"][5].update(latitude="north"), "'latitude'"),
        (lambda d: d["points_of_interest"][1].update(district="Atlantis"), "Atlantis"),
        (lambda d: d["poi_lists"][2]["pois"][0].update(name=""), "poi_lists[2].pois[0]"),
        (lambda d: d["districts"][0].update(parent_district="Nowhere"), "Nowhere"),
    ],
)
def test_malformed_export_names_the_problem_and_writes_nothing(tmp_path, mutate, message):
    call_command("import_city_export", str(ROME), "--no-progress")
    before = snapshot()
    data = json.loads(ROME.read_text())
    # A first valid part would be written if the import were not validated up front.
    data["points_of_interest"][0]["name"] = "Changed Before The Error"
    mutate(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))

    with pytest.raises(CityExportError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_export(bad)
    with pytest.raises(CommandError):
        call_command("import_city_export", str(bad), "--no-progress")

    assert snapshot() == before


def test_truncated_file_is_reported_with_its_position(tmp_path, capsys):
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(ROME.read_bytes()[:5000])

    with pytest.raises(CommandError):
        call_command("import_city_export", str(truncated), "--no-progress")

    err = capsys.readouterr().err
    assert "invalid JSON at line" in err and "truncated" in err
    assert City.objects.count() == 0


def test_a_failure_midway_rolls_back_everything(monkeypatch):
    from cities.services import city_import

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(city_import, "_import_lists", explode)
    with pytest.raises(RuntimeError):
        import_city_export(json.loads(ROME.read_text()))
    assert City.objects.count() == 0 and PointOfInterest.objects.count() == 0


def test_missing_and_binary_files_fail_clearly(tmp_path, capsys):
    binary = tmp_path / "image.json"
    binary.write_bytes(b"\xff\xd8\xff\xe0 not json")
    with pytest.raises(CommandError):
        call_command(
            "import_city_export", str(tmp_path / "nope.json"), str(binary), "--no-progress"
        )
    err = capsys.readouterr().err
    assert "cannot read file" in err and "not UTF-8" in err


@pytest.mark.skipif(
    not CITY_EXPORTS_DIR.is_dir(),
    reason=f"needs the original project's six city exports (CITY_EXPORTS_DIR={CITY_EXPORTS_DIR})",
)
def test_all_shared_exports_import_with_their_counts_and_idempotently():
    files = sorted(CITY_EXPORTS_DIR.glob("*.json"))
    expected = {"pois": 0, "lists": 0, "members": 0}
    for path in files:
        counts = expected_counts(json.loads(Path(path).read_text()))
        for key in expected:
            expected[key] += counts[key]
    call_command("import_city_export", *map(str, files), "--no-progress")
    assert City.objects.count() == len(files)
    assert PointOfInterest.objects.count() == expected["pois"]
    assert PoiList.objects.count() == expected["lists"]
    assert PoiList.pois.through.objects.count() == expected["members"]
    before = snapshot()
    call_command("import_city_export", *map(str, files), "--no-progress")
    assert snapshot() == before


def test_a_reimport_never_overwrites_an_image_stored_meanwhile():
    """A ranking job stores a POI's image while an import of its city is under way: the
    import writes only the fields it owns, so the new image survives the import's stale row."""
    data = json.loads(ROME.read_text())
    import_city_export(data)
    updated = copy.deepcopy(data)
    for row in updated["points_of_interest"]:
        row["description"] = (row.get("description") or "") + " (revised)"
    last = updated["points_of_interest"][-1]
    target = PointOfInterest.objects.get(source_id=last["id"])

    def job_stores_an_image(done: int, total: int) -> None:
        if done == 1:  # the import has already read every POI row
            PointOfInterest.objects.filter(pk=target.pk).update(image_file="cities/new.jpg")

    import_city_export(updated, progress=job_stores_an_image)

    target.refresh_from_db()
    assert target.image_file.name == "cities/new.jpg"
    assert target.description.endswith("(revised)")
