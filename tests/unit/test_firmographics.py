"""CSV firmographics: loading, lookups, the result shape, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqlengine.errors import ValidationError
from mqlengine.ingest.firmographics import (
    ENRICHED_BY,
    CsvFirmographics,
    Enricher,
    FirmographicsFileError,
)

GOOD = """domain,company,industry,employees,country,segment
acme.com,Acme Inc,Software,1200,US,enterprise
www.Globex.io,Globex,Manufacturing,"1,500",DE,
initech.co.uk,Initech,,,GB,smb
"""


def write(tmp_path: Path, text: str, name: str = "firmo.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_lookup_returns_documented_shape(tmp_path: Path) -> None:
    firmo = CsvFirmographics(write(tmp_path, GOOD))
    assert len(firmo) == 3
    assert firmo.enrich("acme.com") == {
        "company": {"name": "Acme Inc", "industry": "Software", "employees": 1200},
        "country": "US",
        "segment": "enterprise",
        ENRICHED_BY: "csv",
    }


def test_empty_cells_are_left_out(tmp_path: Path) -> None:
    firmo = CsvFirmographics(write(tmp_path, GOOD))
    assert firmo.enrich("initech.co.uk") == {
        "company": {"name": "Initech"},
        "country": "GB",
        "segment": "smb",
        ENRICHED_BY: "csv",
    }
    globex = firmo.enrich("globex.io")
    assert globex is not None and "segment" not in globex


def test_thousands_separator_in_employees(tmp_path: Path) -> None:
    globex = CsvFirmographics(write(tmp_path, GOOD)).enrich("globex.io")
    assert globex is not None
    assert globex["company"] == {"name": "Globex", "industry": "Manufacturing", "employees": 1500}


@pytest.mark.parametrize(
    "query",
    ["ACME.com", "www.acme.com", " acme.com. ", "https://www.acme.com/pricing", "eu.acme.com"],
)
def test_domain_matching_is_forgiving(tmp_path: Path, query: str) -> None:
    result = CsvFirmographics(write(tmp_path, GOOD)).enrich(query)
    assert result is not None and result["country"] == "US"


@pytest.mark.parametrize("query", ["unknown.com", "acme.co", "com", "", "notacme.com"])
def test_unknown_domains(tmp_path: Path, query: str) -> None:
    assert CsvFirmographics(write(tmp_path, GOOD)).enrich(query) is None


def test_name_is_carried_and_results_are_fresh_copies(tmp_path: Path) -> None:
    firmo = CsvFirmographics(write(tmp_path, GOOD), name="crm-export")
    first = firmo.enrich("acme.com")
    assert first is not None and first[ENRICHED_BY] == "crm-export"
    first["company"]["employees"] = 0  # type: ignore[index]
    second = firmo.enrich("acme.com")
    assert second is not None and second["company"]["employees"] == 1200  # type: ignore[index]


def test_is_an_enricher(tmp_path: Path) -> None:
    firmo: Enricher = CsvFirmographics(write(tmp_path, GOOD))
    assert isinstance(firmo, Enricher)
    assert firmo.name == "csv"


def test_header_order_case_bom_and_blank_rows(tmp_path: Path) -> None:
    text = (
        "\ufeffCountry, Employees ,DOMAIN,Company,Industry\nFR,10,acme.fr,Acme SAS,Retail\n,,,,\n\n"
    )
    firmo = CsvFirmographics(write(tmp_path, text))
    assert len(firmo) == 1
    assert firmo.enrich("acme.fr") == {
        "company": {"name": "Acme SAS", "industry": "Retail", "employees": 10},
        "country": "FR",
        ENRICHED_BY: "csv",
    }


def test_header_only_file_is_empty_but_valid(tmp_path: Path) -> None:
    firmo = CsvFirmographics(write(tmp_path, "domain,company,industry,employees,country\n"))
    assert len(firmo) == 0
    assert firmo.enrich("acme.com") is None


HEADER = "domain,company,industry,employees,country\n"


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("", 1, "empty file"),
        ("domain,company,industry,country\nacme.com,Acme,Software,US\n", 1, "employees"),
        ("domain,company,industry,employees\n", 1, "country"),
        ("domain,company,industry,employees,country,,\n", 1, "header column 6 has no name"),
        ("domain,company,industry,employees,country,Domain\n", 1, "duplicate header column"),
        ("domain,company,industry,employees,country,_enriched_by\n", 1, "reserved"),
        (HEADER + "acme.com,Acme,Software,120,US\nglobex.com,Globex,Software,abc,DE\n", 3, "'abc'"),
        (HEADER + "acme.com,Acme,Software,51-200,US\n", 2, "whole number"),
        (HEADER + "acme.com,Acme,Software,-5,US\n", 2, "whole number"),
        (HEADER + "acme.com,Acme,Software,12.5,US\n", 2, "whole number"),
        (HEADER + "acme.com,Acme,Software,120\n", 2, "expected 5 cells"),
        (HEADER + "acme.com,Acme,Software,120,US,extra\n", 2, "got 6"),
        (HEADER + ",Acme,Software,120,US\n", 2, "domain is empty"),
        (HEADER + "jane@acme.com,Acme,Software,120,US\n", 2, "e-mail address"),
        (HEADER + "not a domain,Acme,Software,120,US\n", 2, "not a valid domain"),
        (HEADER + "acme,Acme,Software,120,US\n", 2, "not a valid domain"),
        (HEADER + "acme.com,Acme,,,US\n\nWWW.ACME.COM,Acme 2,,,US\n", 4, "first on line 2"),
    ],
)
def test_bad_files_name_file_line_and_problem(
    tmp_path: Path, text: str, line: int, reason: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=r".") as caught:
        CsvFirmographics(path)
    error = caught.value
    assert isinstance(error, FirmographicsFileError)
    assert isinstance(error, ValidationError)
    assert str(error).startswith(f"{path}:{line}: ")
    assert reason in str(error)
    assert (error.path, error.line) == (str(path), line)


def test_quoted_multiline_cell_reports_the_line_where_the_row_ends(tmp_path: Path) -> None:
    text = HEADER + 'acme.com,"Acme\nInc",Software,120,US\nglobex.com,Globex,Software,x,DE\n'
    with pytest.raises(FirmographicsFileError, match=r":4: employees"):
        CsvFirmographics(write(tmp_path, text))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "acme.de,Müller GmbH,Retail,5,DE\n").encode("latin-1"))
    with pytest.raises(FirmographicsFileError, match="not UTF-8"):
        CsvFirmographics(path)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        CsvFirmographics(tmp_path / "nope.csv")
