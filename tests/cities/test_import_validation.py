"""import_city_export refuses what the database would refuse or mangle, naming the field, and
writes nothing: wrong types, NaN, out-of-range coordinates and ids, text longer than its
column (limits read from the model), NUL characters and district parent cycles."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from cities.models import City, PointOfInterest
from cities.services.city_import import CityExportError, import_city_export, load_export
from tests.cities.test_import_city_export import ROME, snapshot

pytestmark = pytest.mark.django_db

BIG = "-9223372036854775808 to 9223372036854775807"


def poi(data: dict, index: int) -> dict:
    return data["points_of_interest"][index]


def where(data: dict, index: int) -> str:
    return f"points_of_interest[{index}] ({poi(data, index)['name']!r})"


def set_parents(data: dict, pairs: dict[str, str]) -> None:
    data["districts"] = [
        {"name": name, "parent_district": parent} for name, parent in pairs.items()
    ]
    for row in data["points_of_interest"]:
        row["district"] = None
    for poi_list in data["poi_lists"]:
        for row in poi_list["pois"]:
            row["district"] = None


CASES = {
    "latitude-north": (
        lambda d: poi(d, 3).update(latitude="north"),
        lambda d: (
            f"{where(d, 3)}: 'latitude' must be a number between -90 and 90 (or null), got 'north'"
        ),
    ),
    "city-latitude-north": (
        lambda d: d["city"].update(latitude="north"),
        lambda d: "city ('Rome'): 'latitude' must be a number between -90 and 90",
    ),
    "latitude-nan": (
        lambda d: poi(d, 4).update(latitude=float("nan")),
        lambda d: (
            f"{where(d, 4)}: 'latitude' must be a number between -90 and 90 (or null), got nan"
        ),
    ),
    "latitude-91": (
        lambda d: poi(d, 4).update(latitude=91.5),
        lambda d: f"{where(d, 4)}: 'latitude' must be a number between -90 and 90",
    ),
    "longitude-infinite": (
        lambda d: poi(d, 4).update(longitude=float("inf")),
        lambda d: f"{where(d, 4)}: 'longitude' must be a number between -180 and 180",
    ),
    "id-2**70": (
        lambda d: poi(d, 2).update(id=2**70),
        lambda d: f"points_of_interest[2]: 'id' must be an integer from {BIG}, got {2**70}",
    ),
    "id-true": (
        lambda d: poi(d, 2).update(id=True),
        lambda d: f"points_of_interest[2]: 'id' must be an integer from {BIG}, got True",
    ),
    "rank-too-big": (
        lambda d: poi(d, 1).update(rank=2**40),
        lambda d: f"{where(d, 1)}: 'rank' must be an integer from -2147483648 to 2147483647",
    ),
    "city-name-300": (
        lambda d: d["city"].update(name="R" * 300),
        lambda d: "'city.name' has 300 characters, more than the 200 allowed",
    ),
    "poi-name-300": (
        lambda d: poi(d, 6).update(name="Pantheon " * 33 + "xxx"),
        lambda d: "points_of_interest[6]: 'name' has 300 characters, more than the 200 allowed",
    ),
    "address-501": (
        lambda d: poi(d, 1).update(address="a" * 501),
        lambda d: f"{where(d, 1)}: 'address' has 501 characters, more than the 500 allowed",
    ),
    "list-title-201": (
        lambda d: d["poi_lists"][1].update(title="t" * 201),
        lambda d: "poi_lists[1]: 'title' has 201 characters, more than the 200 allowed",
    ),
    "image-path-too-long": (
        lambda d: poi(d, 1).update(image_url="Rome/media/cities/images/pois/" + "x" * 300),
        lambda d: (
            f"{where(d, 1)}: 'image_url' names a file path of 319 characters,"
            " more than the 300 allowed"
        ),
    ),
    "about-object": (
        lambda d: d["city"].update(about={"text": "Eternal city"}),
        lambda d: "city ('Rome'): 'about' must be text or null, got {'text': 'Eternal city'}",
    ),
    "nul-in-name": (
        lambda d: poi(d, 1).update(name="Forum\x00Romanum"),
        lambda d: "points_of_interest[1]: 'name' contains a NUL character",
    ),
    "district-as-list": (
        lambda d: poi(d, 1).update(district=["Trastevere"]),
        lambda d: f"{where(d, 1)}: district ['Trastevere'] is not in 'districts'",
    ),
    "category-as-list": (
        lambda d: poi(d, 1).update(category=["see"]),
        lambda d: f"{where(d, 1)}: 'category' must be one of",
    ),
    "district-cycle": (
        lambda d: set_parents(d, {"Centro": "Prati", "Prati": "Monti", "Monti": "Centro"}),
        lambda d: (
            "districts[0] ('Centro'): 'parent_district' makes a cycle:"
            " 'Centro' -> 'Prati' -> 'Monti' -> 'Centro'"
        ),
    ),
    "district-its-own-parent": (
        lambda d: set_parents(d, {"Centro": None, "Prati": "Prati"}),
        lambda d: "districts[1] ('Prati'): 'parent_district' makes a cycle: 'Prati' -> 'Prati'",
    ),
}


@pytest.mark.parametrize(("mutate", "message"), CASES.values(), ids=CASES.keys())
def test_bad_value_names_the_field_and_writes_nothing(tmp_path, capsys, mutate, message):
    call_command("import_city_export", str(ROME), "--no-progress")
    before = snapshot()
    data = json.loads(ROME.read_text())
    data["points_of_interest"][0]["name"] = "Changed Before The Error"
    mutate(data)
    expected = message(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))  # NaN and Infinity are written as JSON's extension

    with pytest.raises(CityExportError) as error:
        load_export(bad)
    assert expected in str(error.value)
    with pytest.raises(CityExportError):
        import_city_export(data)
    with pytest.raises(CommandError):
        call_command("import_city_export", str(bad), "--no-progress")
    assert expected in capsys.readouterr().err

    assert snapshot() == before


def test_text_limits_follow_the_model_fields(monkeypatch):
    data = json.loads(ROME.read_text())
    poi(data, 0)["name"] = "n" * 60
    monkeypatch.setattr(PointOfInterest._meta.get_field("name"), "max_length", 50)
    with pytest.raises(CityExportError, match="'name' has 60 characters, more than the 50"):
        import_city_export(data)
    assert City.objects.count() == 0


def test_limits_at_the_edge_are_accepted():
    data = json.loads(ROME.read_text())
    poi(data, 0).update(name="n" * 200, latitude=-90, longitude=180.0, id=2**63 - 1)
    data["city"]["about"] = None
    import_city_export(data)
    assert PointOfInterest.objects.get(source_id=2**63 - 1).name == "n" * 200
