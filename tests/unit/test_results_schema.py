"""Results schema 2: measured cells apart from the derived section; schema-1 files upgraded on read, losing nothing."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bench import metrics, results
from bench.errors import BenchError

ROOT = Path(__file__).resolve().parents[2]
#: the committed results files still in schema 1 (newer runs are committed in schema 2)
COMMITTED = [
    str(p.relative_to(ROOT))
    for p in sorted((ROOT / "reports" / "findings").glob("*.json")) + [ROOT / "reports/baselines/ci/results.json"]
    if json.loads(p.read_text()).get("schema_version") == 1
]


def _raw_rows(data: dict) -> Counter:
    """(cell, recommender, metric, load, value) of every metric row a schema-1 file holds, pseudo-cells included."""
    return Counter(
        (c["cell"], c["recommender"], m["metric"], m.get("load", ""), m["value"])
        for c in data["cells"]
        for m in c.get("metrics", [])
    )


def _csv_rows(run: results.RunResult) -> Counter:
    return Counter(
        (r["cell"], r["recommender"], r["metric"], r["load"], float(r["value"]) if r["value"] else None)
        for r in results.csv_rows(run)
        if r["metric"] != "status"
    )


@pytest.mark.parametrize("path", COMMITTED)
def test_every_committed_schema_1_file_loads_as_schema_2_and_keeps_every_row_in_the_csv(path):
    data = json.loads((ROOT / path).read_text())
    assert data["schema_version"] == 1
    run = results.load(ROOT / path)
    assert run.schema_version == 2
    # no pseudo-cell is left among the cells: hosted-API lines and size fits are derived entries
    assert not {c.recommender for c in run.cells} & {results.HOSTED_RECOMMENDER, results.SIZE_FIT_RECOMMENDER}
    pseudo = [
        c for c in data["cells"] if c["recommender"] in (results.HOSTED_RECOMMENDER, results.SIZE_FIT_RECOMMENDER)
    ]
    assert len(run.derived.hosted) + len(run.derived.size_fits) == len(pseudo)
    # every cell has a family; cells hold measured rows only; the price context left the provenance
    assert all(c.family in ("classic", "llm", "test") for c in run.cells)
    assert not [m for c in run.cells for m in c.metrics if metrics.is_derived(m.metric, m.load)]
    assert "cost" not in run.provenance and run.derived.pricing is not None
    # and results.csv still holds every row the schema-1 file held, under the same cell and recommender
    assert _csv_rows(run) == _raw_rows(data)


def test_a_gated_cell_keeps_its_verdict_in_the_derived_section_and_shows_it_when_read():
    data = json.loads((ROOT / "reports/findings/full.json").read_text())
    # a schema-1 file holds the verdict in the cell; schema 2 in its derived section
    gated = [c["cell"] for c in data["cells"] if c.get("status") == "gated"] + [
        name for name, d in (data.get("derived") or {}).get("cells", {}).items() if d.get("status") == "gated"
    ]
    assert gated
    run = results.load(ROOT / "reports/findings/full.json")
    assert all(run.cell(name).status == "ok" and run.derived.cells[name].status == "gated" for name in gated)
    shown = results.with_derived(run)
    assert all(shown.cell(name).status == "gated" and shown.cell(name).error for name in gated)
    assert "quality_gate" in shown.cell(gated[0]).extras  # the record that explains it


def test_schema_2_round_trips_and_reading_twice_shows_each_derived_row_once(tmp_path):
    run = results.load(ROOT / "reports/findings/generative.json")
    again = results.load(results.write_json(run, tmp_path / "results.json"))
    assert results.to_dict(again) == results.to_dict(run)
    once = results.with_derived(again)
    assert results.to_dict(results.with_derived(once)) == results.to_dict(once)


def test_a_malformed_derived_section_is_one_line_naming_the_field(tmp_path):
    run = results.load(ROOT / "reports/baselines/ci/results.json")
    data = results.to_dict(run)
    data["derived"]["hosted"][0]["metrics"][0]["value"] = "cheap"
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BenchError, match=r"derived\.hosted\[0\]\.metrics\[0\]\.value is a string") as exc:
        results.load(path)
    assert "\n" not in str(exc.value)
