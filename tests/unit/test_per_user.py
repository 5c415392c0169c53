"""Per-user quality: stored compactly in the results, read back exactly, absent in older files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import per_user, results
from bench.errors import BenchError
from bench.findings import slim
from bench.per_user import PerUser
from bench.quality import per_user_metrics
from bench.results import CellResult, RunResult


def _ml100k_like(seed: int = 0, n_users: int = 943, k: int = 20) -> PerUser:
    """Shaped like a real cell: ~0.6 relevant items per list position over the first ranks, 1-60 relevant each."""
    rng = np.random.default_rng(seed)
    hits = rng.random((n_users, k)) < np.linspace(0.25, 0.08, k)
    n_rel = np.maximum(hits.sum(axis=1), rng.integers(1, 60, n_users))
    return PerUser(users=np.arange(n_users) * 2 + 1, hits=hits, n_relevant=n_rel)


def test_round_trip_gives_every_users_figures_exactly_at_every_cutoff_up_to_k():
    pu = _ml100k_like()
    back = PerUser.from_dict(json.loads(json.dumps(pu.to_dict())))
    assert back.users.tolist() == pu.users.tolist() and back.n == 943 and back.k == 20 and back.part == "test"
    expected = per_user_metrics(pu.hits, pu.n_relevant, (10, 20))
    for name, values in expected.items():
        assert np.array_equal(back.metric(name), values), name
    assert back.metric("ndcg@21") is None and back.metric("coverage@10") is None and back.metric("rmse") is None


def test_a_cells_per_user_record_for_943_users_at_k_20_takes_under_6_kB_of_json():
    assert len(json.dumps(_ml100k_like().to_dict())) < 6_000


def test_ids_that_are_not_ascending_or_rows_of_another_count_are_refused_when_written():
    with pytest.raises(ValueError, match="ascending"):
        PerUser(users=np.array([2, 1]), hits=np.zeros((2, 3), bool), n_relevant=np.ones(2)).to_dict()
    with pytest.raises(ValueError, match="one row per user"):
        PerUser(users=np.array([1, 2, 3]), hits=np.zeros((2, 3), bool), n_relevant=np.ones(3)).to_dict()


@pytest.mark.parametrize("damage", ["format", "users", "length", "n"])
def test_damaged_per_user_figures_are_one_clear_error(damage):
    data = PerUser(users=np.arange(5), hits=np.ones((5, 10), bool), n_relevant=np.full(5, 10)).to_dict()
    if damage == "format":
        data["format"] = "something-else/9"
    elif damage == "users":
        data["users"] = "not base64 at all!"
    elif damage == "length":
        data["n"] = 6
    else:
        del data["k"]
    with pytest.raises(BenchError, match="cell a/b: per-user"):
        PerUser.from_dict(data, where="cell a/b")


def _run(cells: list[CellResult]) -> RunResult:
    return RunResult(run_id="r", scenario={"name": "t"}, provenance={}, cells=cells)


def test_results_written_before_per_user_figures_existed_load_with_none(tmp_path):
    cell = CellResult("ml/s/pop/-/cpu", "ml", "s", "pop", "-", "cpu")
    data = results.to_dict(_run([cell]))
    del data["cells"][0]["per_user"]  # what an older results.json looks like
    (tmp_path / "results.json").write_text(json.dumps(data))
    loaded = results.load(tmp_path)
    assert loaded.cells[0].per_user == {}
    assert per_user.of_cell(loaded.cells[0]) is None


def test_per_user_figures_survive_the_results_file_and_the_findings_copy(tmp_path):
    cell = CellResult("ml/s/ease/-/cpu", "ml", "s", "ease", "-", "cpu")
    cell.per_user = _ml100k_like().to_dict()
    results.write(_run([cell]), tmp_path)
    loaded = per_user.of_cell(results.load(tmp_path).cells[0])
    assert loaded is not None and loaded.n == 943
    copied = results.from_dict(json.loads(json.dumps(slim(results.load(tmp_path)))))
    assert np.array_equal(per_user.of_cell(copied.cells[0]).hits, _ml100k_like().hits)
