"""scripts/llm_study.py, the language-model quality study kept outside the package: it loads from scripts/, the
package never imports it, its precomputed-list recommender serves lists as given, and the two-tower study
prints one JSON line per mode with full-ranking quality on every test user."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "llm_study.py"


@pytest.fixture(scope="module")
def study() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llm_study", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_package_ships_no_study_module_and_imports_none() -> None:
    import bench

    package = Path(bench.__file__).resolve().parent
    assert not (package / "recommenders" / "llm" / "study.py").exists()
    imported: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    assert not {name for name in imported if name.endswith("study")}


def test_precomputed_lists_are_served_in_their_order_cut_at_k(study: ModuleType, toy_llm_split: Any) -> None:
    users = np.array([3, 7])
    lists = np.array([[5, 1, 9, 2], [0, 8, 4, 6]])
    top = study._Lists(users, lists).fit(toy_llm_split.train_set()).recommend(np.array([7, 3]), 3)
    assert top.items.tolist() == [[0, 8, 4], [5, 1, 9]]
    assert np.all(np.diff(top.scores, axis=1) < 0)  # strictly decreasing: the evaluator keeps the given order


def test_two_tower_study_prints_one_json_line_per_mode_over_every_test_user(
    study: ModuleType, tiny: dict[str, Any], toy_llm_split: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    args = study.parser().parse_args(
        [
            "two-tower",
            "--model",
            tiny["model"],
            "--modes",
            "zero-shot",
            "--threads",
            "1",
            "--cache-dir",
            str(tiny["cache_dir"]),
        ]
    )
    study.study_two_tower(args, toy_llm_split)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["recommender"] == "llm-two-tower" and record["mode"] == "zero-shot"
    assert record["evaluated_users"] == len(toy_llm_split.test_users())
    assert 0.0 <= record["ndcg@10"] <= 1.0 and 0.0 <= record["recall@10"] <= record["hit@10"] <= 1.0
