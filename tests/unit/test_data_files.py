"""A user's own CSV/Parquet data: column aliases, optional fields, item text, and one-line errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.data import load_dataset, make_split
from bench.data.dataset import canonical_checksum
from bench.data.files import load
from bench.errors import ConfigError, DataError

ROWS = [(7, 100, 4.0, 1_000), (7, 200, 3.5, 1_010), (8, 100, 5.0, 1_020), (9, 300, 1.0, 1_030), (8, 300, 2.0, 990)]


def _csv(path, header: str, rows) -> str:
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return str(path)


def test_csv_with_aliased_columns_loads_with_original_ids_and_checksum(tmp_path):
    path = _csv(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp", ROWS)
    ds = load_dataset(path)
    assert ds.name == "ratings" and (ds.n_users, ds.n_items, len(ds.interactions)) == (3, 3, 5)
    assert ds.user_ids.tolist() == [7, 8, 9] and ds.item_ids.tolist() == [100, 200, 300]
    i = ds.interactions
    assert (
        list(
            zip(ds.user_ids[i.users].tolist(), ds.item_ids[i.items].tolist(), i.ratings.tolist(), i.timestamps.tolist())
        )
        == ROWS
    )
    assert ds.checksum == canonical_checksum(*map(np.array, zip(*ROWS)))


def test_parquet_and_csv_of_the_same_data_have_the_same_checksum(tmp_path):
    frame = pd.DataFrame(ROWS, columns=["user_id", "item_id", "rating", "timestamp"])
    frame.to_parquet(tmp_path / "ratings.parquet")
    frame.to_csv(tmp_path / "ratings.csv", index=False)
    assert load(tmp_path / "ratings.parquet").checksum == load(tmp_path / "ratings.csv").checksum


def test_implicit_data_without_rating_or_time(tmp_path):
    ds = load_dataset(_csv(tmp_path / "clicks.csv", "user,item", [("a", "x"), ("b", "x"), ("a", "y")]))
    assert ds.interactions.ratings.tolist() == [1.0, 1.0, 1.0]
    assert not ds.has_timestamps and ds.user_ids.tolist() == ["a", "b"]
    with pytest.raises(ConfigError) as err:
        make_split(ds, "temporal-loo", seed=0)
    assert "random-8-1-1" in str(err.value)


def test_iso_dates_become_unix_seconds(tmp_path):
    ds = load(_csv(tmp_path / "r.csv", "user,item,time", [(1, 1, "1970-01-02T00:00:00Z"), (1, 2, "1970-01-01")]))
    assert sorted(ds.interactions.timestamps.tolist()) == [0, 86_400]


def test_repeated_pair_keeps_its_latest_event(tmp_path):
    ds = load(_csv(tmp_path / "r.csv", "user,item,rating,timestamp", [(1, 1, 2, 50), (1, 1, 5, 99), (1, 1, 3, 10)]))
    assert len(ds.interactions) == 1
    assert ds.interactions.ratings.tolist() == [5.0] and ds.interactions.timestamps.tolist() == [99]


def test_item_text_file_aligns_titles_years_genres_and_blanks_the_rest(tmp_path):
    ratings = _csv(tmp_path / "r.csv", "user,item", [(1, 10), (1, 20), (2, 30)])
    (tmp_path / "items.csv").write_text(
        'item_id,title,year,genres\n20,"Babe, Pig",1995,Children\'s|Comedy\n'
        "10,Heat,1995,Action|Crime|Thriller\n99,Unused,2000,Drama\n"
    )
    ds = load_dataset(f"{ratings}?items={tmp_path / 'items.csv'}")
    text = ds.item_text
    assert text.titles == ["Heat", "Babe, Pig", ""]
    assert text.years.tolist() == [1995, 1995, -1]
    assert text.genres == [("Action", "Crime", "Thriller"), ("Children's", "Comedy"), ()]
    assert load_dataset(ratings, items=tmp_path / "items.csv").item_text.titles == text.titles


def test_missing_file_is_a_data_error_naming_it(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset(str(tmp_path / "absent.csv"))
    assert "absent.csv" in str(err.value) and "not found" in str(err.value)


def test_missing_columns_are_named(tmp_path):
    with pytest.raises(DataError) as err:
        load(_csv(tmp_path / "r.csv", "user,rating", [(1, 4)]))
    message = str(err.value)
    assert "missing column(s) item" in message and "found: user, rating" in message


def test_non_numeric_rating_names_the_row(tmp_path):
    with pytest.raises(DataError) as err:
        load(_csv(tmp_path / "r.csv", "user,item,rating", [(1, 1, 4), (1, 2, "five"), (2, 1, 3)]))
    message = str(err.value)
    assert "'five'" in message and "row 2 (line 3)" in message


def test_empty_rating_is_refused_too(tmp_path):
    with pytest.raises(DataError) as err:
        load(_csv(tmp_path / "r.csv", "user,item,rating", [(1, 1, 4), (1, 2, "")]))
    assert "row 2" in str(err.value)


def test_header_without_rows_is_no_rows(tmp_path):
    with pytest.raises(DataError) as err:
        load(_csv(tmp_path / "r.csv", "user,item,rating", []))
    assert "no rows" in str(err.value)


def test_empty_file_is_a_data_error(tmp_path):
    (tmp_path / "r.csv").write_text("")
    with pytest.raises(DataError) as err:
        load(tmp_path / "r.csv")
    assert "empty" in str(err.value)


def test_parquet_without_rows_is_no_rows(tmp_path):
    pd.DataFrame({"user": pd.Series([], dtype="int64"), "item": pd.Series([], dtype="int64")}).to_parquet(
        tmp_path / "r.parquet"
    )
    with pytest.raises(DataError) as err:
        load(tmp_path / "r.parquet")
    assert "no rows" in str(err.value)


def test_empty_user_names_the_row(tmp_path):
    with pytest.raises(DataError) as err:
        load(_csv(tmp_path / "r.csv", "user,item", [(1, 1), ("", 2)]))
    assert "empty user" in str(err.value) and "row 2" in str(err.value)


def test_item_text_file_without_title_is_named(tmp_path):
    ratings = _csv(tmp_path / "r.csv", "user,item", [(1, 10)])
    (tmp_path / "items.csv").write_text("item,year\n10,1995\n")
    with pytest.raises(DataError) as err:
        load(ratings, items=tmp_path / "items.csv")
    assert "item-text file" in str(err.value) and "title" in str(err.value)


def test_unsupported_suffix_is_a_config_error(tmp_path):
    (tmp_path / "r.xlsx").write_text("x")
    with pytest.raises(ConfigError) as err:
        load_dataset(str(tmp_path / "r.xlsx"))
    assert ".csv" in str(err.value)
