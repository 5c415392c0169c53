"""The findings: copied results, rendered from those copies alone into docs/findings.md (in full) and the README
(in brief), and checked against both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_report_sample_run import make_run

from bench import cost, findings
from bench import results as results_mod
from bench.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _readme(tmp_path: Path, body: str = "") -> Path:
    """docs/findings.md with its full findings block, and README.md with its in-brief block."""
    (tmp_path / "docs").mkdir(exist_ok=True)
    (tmp_path / "README.md").write_text(
        f"# project\n\n## In brief\n\n{findings.BRIEF_START}\n{body}{findings.BRIEF_END}\n\n## After\n",
        encoding="utf-8",
    )
    path = tmp_path / "docs" / "findings.md"
    path.write_text(
        f"# project\n\n## What we found\n\n{findings.START}\n{body}{findings.END}\n\n## After\n", encoding="utf-8"
    )
    return path


def _targets(doc: Path) -> list[str]:
    return ["--doc", str(doc), "--readme", str(doc.parent.parent / "README.md")]


@pytest.fixture()
def run_dir(tmp_path):
    run = make_run()
    cost.add_costs(run, None, None, 2, hosted=None)
    out = tmp_path / "runs" / run.run_id
    out.mkdir(parents=True)
    results_mod.write(run, out)
    return out


def test_stored_copy_drops_raw_samples_keeps_every_metric_and_loads_back(run_dir, tmp_path):
    original = results_mod.load(run_dir)
    [path] = findings.store([run_dir], tmp_path / "store")
    assert path.name == "quick.json"  # named by its scenario: a later run of it replaces this file
    raw = json.loads(path.read_text())
    assert all("samples_ms" not in t for c in raw["cells"] for t in c["timings"])
    assert raw["provenance"]["findings_copy"]["raw_timing_samples_dropped"] > 0
    copy = results_mod.load(path)
    assert [(m.metric, m.value) for c in copy.cells for m in c.metrics] == [
        (m.metric, m.value) for c in original.cells for m in c.metrics
    ]
    assert path.stat().st_size < (run_dir / "results.json").stat().st_size / 2


def test_both_blocks_are_rewritten_from_the_store_and_check_catches_a_hand_edit_in_either(run_dir, tmp_path, capsys):
    doc = _readme(tmp_path, "stale text\n")
    readme = tmp_path / "README.md"
    store = tmp_path / "store"
    assert main(["findings", str(run_dir), "--store", str(store), *_targets(doc)]) == 0
    text, brief = doc.read_text(), readme.read_text()
    for written in (text, brief):
        assert "stale text" not in written and written.startswith("# project") and written.endswith("## After\n")
    ease = results_mod.load(store / "quick.json").cell("ml-100k/random-8-1-1/ease/none/cpu")
    quoted = f"| ease | {findings.sig(ease.metric('ndcg@10').value)} |"
    assert quoted in text  # the table quotes the stored figure
    assert "reports" not in text.split(findings.START)[0]  # nothing written outside the block
    # the README holds the in-brief sentences alone, the same ones docs/findings.md opens with
    lines = findings.in_brief(results_mod.load(store / "quick.json"))
    assert lines and all(f"- {line}\n" in brief and f"- {line}\n" in text for line in lines)
    assert quoted not in brief
    assert main(["findings", "--check", "--store", str(store), *_targets(doc)]) == 0
    # a figure changed by hand, in either file, no longer matches the stored results
    for path, edited in (
        (doc, text.replace(quoted, "| ease | 0.999 |")),
        (readme, brief.replace("- `quick`", "- `quack`")),
    ):
        path.write_text(edited)
        assert main(["findings", "--check", "--store", str(store), *_targets(doc)]) == 1
        assert f"{path}: its" in capsys.readouterr().out
        # and re-rendering with no runs given restores it from the store alone
        assert main(["findings", "--store", str(store), *_targets(doc)]) == 0
    assert doc.read_text() == text and readme.read_text() == brief


def test_links_in_the_block_are_relative_to_the_findings_page(run_dir, tmp_path):
    doc = _readme(tmp_path)
    assert main(["findings", str(run_dir), "--store", str(tmp_path / "reports" / "findings"), *_targets(doc)]) == 0
    assert "[`../reports/findings/quick.json`](../reports/findings/quick.json)" in doc.read_text()


@pytest.mark.parametrize(
    "case, message",
    [
        ("no markers", "needs exactly one findings block"),
        ("no brief markers", "needs exactly one in-brief block"),
        ("no readme", "no such file; pass --readme"),
        ("not results", "not a recbench results file"),
        ("same scenario twice", "two runs of the same scenario"),
        ("check with runs", "not both"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, message, run_dir, tmp_path, capsys):
    readme = _readme(tmp_path)
    store = tmp_path / "store"
    args = ["findings", str(run_dir), "--store", str(store), *_targets(readme)]
    if case == "no markers":
        readme.write_text("# no block here\n")
    elif case == "no brief markers":
        (tmp_path / "README.md").write_text("# no block here\n")
    elif case == "no readme":
        (tmp_path / "README.md").unlink()
    elif case == "not results":
        bogus = tmp_path / "bogus.json"
        bogus.write_text("{}")
        args[1] = str(bogus)
    elif case == "same scenario twice":
        args.insert(2, str(run_dir / "results.json"))
    else:
        args.append("--check")
    before = readme.read_text()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert readme.read_text() == before  # nothing written
    assert not store.exists() or not list(store.glob("*.json"))


def _sample_run(int8_share: float, int8_status: str = "ok"):
    """The sample run with its onnx-int8 two-tower keeping `int8_share` of fp32's NDCG@10, and its views."""
    run = make_run()
    cost.add_costs(run, None, None, 2, hosted=None)
    views = {v.name: v for v in findings.build_views(run)}
    views["llm-two-tower onnx-int8"].cell.metric("ndcg@10").value = (
        int8_share * views["llm-two-tower fp32"].quality.value
    )
    views["llm-two-tower onnx-int8"].cell.status = int8_status
    return run, views


def _quotes_int8_speedup(run) -> bool:
    return any("largest speed-up" in line and "onnx-int8" in line for line in findings.in_brief(run))


def test_in_brief_quotes_the_best_and_cheapest_cells_and_the_fastest_variant_that_passes_the_gate():
    run, views = _sample_run(0.995)  # keeps 99.5%: the gate's rule says passed
    lines = findings.in_brief(run)
    ease, fp32, int8 = views["ease"], views["llm-two-tower fp32"], views["llm-two-tower onnx-int8"]
    best = max((v for v in (fp32, int8) if v.ok), key=lambda v: v.quality.value)
    assert lines[0].startswith("`quick`: the best language-model recommender") and best.name in lines[0]
    assert findings.usd(best.usd.value) in lines[0] and findings.usd(ease.usd.value) in lines[0]
    speed = int8.throughput.value / fp32.throughput.value
    assert int8.ok and f"{speed:.1f}x the throughput" in lines[1]


def test_in_brief_calls_a_speed_up_passing_the_gate_only_where_the_gates_rule_says_passed(monkeypatch):
    """Not by the cell's status: a variant the gate cannot decide on (its retained share's interval straddles
    99%) is not quoted as passing, nor one below 99%, nor a gated one."""
    from bench.analysis import paired

    assert not _quotes_int8_speedup(_sample_run(0.985)[0])
    assert not _quotes_int8_speedup(_sample_run(0.995, "gated")[0])
    monkeypatch.setattr(paired, "gate_verdict", lambda c, share: "not distinguishable")
    assert not _quotes_int8_speedup(_sample_run(0.995)[0])


@pytest.mark.parametrize(
    "target",
    [findings.findings_doc(ROOT / "docs" / "findings.md"), findings.readme_brief(ROOT / "README.md")],
    ids=["docs/findings.md", "README.md"],
)
def test_committed_findings_match_the_committed_results_files(target):
    """docs/findings.md and the README's in-brief are exactly what `recbench findings` renders from
    reports/findings/*.json."""
    store = ROOT / "reports" / "findings"
    if not list(store.glob("*.json")):
        pytest.fail("reports/findings/ holds no results: run `recbench findings RUN_DIR...` and commit them")
    assert target.matches(target.rendered(store)), (
        f"{target.path.name} differs from reports/findings/*.json: run `recbench findings` and commit it"
    )
