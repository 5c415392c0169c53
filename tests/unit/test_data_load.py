"""load_dataset / fetch: the name grammar, the listing, and errors that name the choices."""

from __future__ import annotations

import pytest

from bench.data import DATASETS, SPLITS, fetch, load_dataset
from bench.errors import ConfigError


def test_listing_names_every_kind_of_dataset_and_split():
    assert {"ml-100k", "synthetic"} <= set(DATASETS)
    assert any(".csv" in key for key in DATASETS)
    assert set(SPLITS) == {"random-8-1-1", "temporal-loo", "cold-items"}


def test_unknown_dataset_is_a_config_error_listing_the_choices():
    with pytest.raises(ConfigError) as err:
        load_dataset("ml-1m")
    message = str(err.value)
    assert "ml-1m" in message and "ml-100k" in message and "synthetic" in message and ".csv" in message


def test_unknown_dataset_cannot_be_fetched_either():
    with pytest.raises(ConfigError) as err:
        fetch("netflix")
    assert "ml-100k" in str(err.value)


def test_plain_synthetic_is_the_documented_default():
    ds = load_dataset("synthetic")
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (1000, 500, 20_000)


def test_file_dataset_fetch_checks_it_parses(tmp_path):
    (tmp_path / "r.csv").write_text("user,item\n1,2\n")
    assert fetch(str(tmp_path / "r.csv")) == tmp_path / "r.csv"
