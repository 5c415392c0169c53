"""A user's own data: an interactions file and an optional item-text file, CSV or Parquet.

Interactions: columns user, item[, rating][, timestamp]. Common aliases are accepted, case-insensitively,
with RecBole-style `:type` suffixes ignored (user_id, userId, item_id, movie_id, score, ts, ...).
  - rating absent -> every interaction counts 1.0 (implicit feedback);
  - timestamp absent -> the dataset has no timestamps (temporal splits are refused);
    Unix seconds or ISO-8601 date-times are accepted;
  - a repeated (user, item) pair keeps its latest event (by timestamp, else the last row), so one pair can
    never land in both train and test.
Item text: columns item, title[, year][, genres] with genres separated by "|". The catalogue is the set of
items with interactions; text rows for other items are ignored, catalogue items without text get blanks.
Every problem is one DataError line naming the file, the row or columns, and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.checksum import fast_canonical_checksum
from bench.data.dataset import Dataset, Interactions, ItemText
from bench.errors import DataError

ALIASES = {
    "user": ("user", "user_id", "userid", "uid", "users", "customer_id", "visitor_id"),
    "item": (
        "item",
        "item_id",
        "itemid",
        "iid",
        "items",
        "movie_id",
        "movieid",
        "product_id",
        "productid",
        "article_id",
        "track_id",
        "book_id",
        "asin",
    ),
    "rating": ("rating", "ratings", "score", "stars", "value", "preference"),
    "timestamp": ("timestamp", "ts", "time", "datetime", "date", "unix_timestamp", "event_time", "created_at"),
    "title": ("title", "name", "movie_title", "item_name", "product_name"),
    "year": ("year", "release_year"),
    "genres": ("genres", "genre", "class", "categories", "category", "tags"),
}
SUFFIXES_CSV = (".csv", ".tsv", ".txt")
SUFFIXES_PARQUET = (".parquet", ".pq")
GENRE_SEPARATOR = "|"


def is_data_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in SUFFIXES_CSV + SUFFIXES_PARQUET


def _normalise(column: str) -> str:
    return str(column).split(":", 1)[0].strip().lower().replace(" ", "_").replace("-", "_")


def _separator(path: Path, suffix: str) -> str:
    """ "," for .csv, tab for .tsv; a .txt file's separator is read off its header line."""
    if suffix != ".txt":
        return "\t" if suffix == ".tsv" else ","
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline()
    counts = {sep: header.count(sep) for sep in ("\t", ",", ";", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _read_table(path: Path, what: str) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{what} {path} not found; check the path")
    if not path.is_file():
        raise DataError(f"{what} {path} is not a file; pass a .csv or .parquet file")
    suffix = path.suffix.lower()
    try:
        if suffix in SUFFIXES_PARQUET:
            return pd.read_parquet(path)
        if suffix in SUFFIXES_CSV:
            # strings throughout: numbers are checked column by column below, with row numbers
            return pd.read_csv(
                path, sep=_separator(path, suffix), dtype=str, keep_default_na=False, skipinitialspace=True
            )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as exc:
        if isinstance(exc, pd.errors.EmptyDataError):
            raise DataError(f"{what} {path} is empty (no header, no rows); add a header line and rows") from None
        reason = str(exc).splitlines()[0]
        raise DataError(
            f"{what} {path} cannot be read ({reason}); check it is a valid "
            f"{'Parquet' if suffix in SUFFIXES_PARQUET else 'CSV'} file"
        ) from None
    raise DataError(f"{what} {path} has an unsupported format {suffix or '(no suffix)'}; use .csv, .tsv or .parquet")


def _find_columns(
    frame: pd.DataFrame, required: tuple[str, ...], optional: tuple[str, ...], path: Path, what: str
) -> dict[str, str]:
    """Map each role to the file's column; DataError naming the missing roles and the columns present."""
    by_name: dict[str, str] = {}
    for col in frame.columns:
        by_name.setdefault(_normalise(col), col)
    found = {}
    for role in required + optional:
        for alias in ALIASES[role]:
            if alias in by_name:
                found[role] = by_name[alias]
                break
    missing = [r for r in required if r not in found]
    if missing:
        present = ", ".join(map(str, frame.columns)) or "none"
        raise DataError(
            f"{what} {path} is missing column(s) {', '.join(missing)} (found: {present}); "
            f"name them {' and '.join(missing)} (aliases such as {ALIASES[missing[0]][1]} work)"
        )
    return found


def _row_label(index: int, path: Path) -> str:
    """1-based data row, plus the line number for text files (header is line 1)."""
    if path.suffix.lower() in SUFFIXES_CSV:
        return f"row {index + 1} (line {index + 2})"
    return f"row {index + 1}"


def _blank(values: pd.Series) -> np.ndarray:
    return (values.isna() | (values.astype(str).str.strip() == "")).to_numpy()


def _ids(values: pd.Series, role: str, path: Path, what: str) -> np.ndarray:
    """Integer ids stay integers (numeric sort, compact); anything else becomes strings."""
    blank = _blank(values)
    if blank.any():
        row = int(np.flatnonzero(blank)[0])
        raise DataError(f"{what} {path} has an empty {role} in {_row_label(row, path)}; fill or drop that row")
    numeric = pd.to_numeric(values, errors="coerce")
    if not numeric.isna().any():
        as_float = numeric.to_numpy(dtype=np.float64)
        if np.all(as_float == np.round(as_float)) and np.abs(as_float).max() < 2**62:
            return as_float.astype(np.int64)
    return values.astype(str).str.strip().to_numpy(dtype=str)


def _numbers(values: pd.Series, role: str, path: Path, what: str, fix: str) -> np.ndarray:
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{what} {path} has a missing or non-numeric {role} {str(values.iloc[row])!r} in "
            f"{_row_label(row, path)}; {fix}"
        )
    out = numeric.to_numpy(dtype=np.float64)
    # inf, -inf, or a value float32 (how ratings are held) cannot represent: every later figure would be NaN or 0
    with np.errstate(over="ignore"):
        bad = ~np.isfinite(out.astype(np.float32))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{what} {path} has a non-finite or out-of-range {role} {str(values.iloc[row])!r} in "
            f"{_row_label(row, path)}; {fix} (finite, within +-3.4e38)"
        )
    return out


def _timestamps(values: pd.Series, path: Path, what: str) -> np.ndarray:
    numeric = pd.to_numeric(values, errors="coerce")
    if not numeric.isna().any():
        seconds = numeric.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(seconds) | (np.abs(seconds) > 2**62)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{what} {path} has a non-finite or out-of-range timestamp {str(values.iloc[row])!r} "
                f"in {_row_label(row, path)}; use Unix seconds or ISO-8601 date-times"
            )
        return np.rint(seconds).astype(np.int64)
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{what} {path} has an unreadable timestamp {str(values.iloc[row])!r} in "
            f"{_row_label(row, path)}; use Unix seconds or ISO-8601 date-times"
        )
    # resolution-independent (pandas may hold s, ms, us or ns): whole seconds since the epoch
    return ((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy().astype(np.int64)


def read_interactions(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(user ids, item ids, ratings float32, timestamps int64 or None) in original ids, duplicates collapsed."""
    path = Path(path).expanduser()
    what = "interactions file"
    frame = _read_table(path, what)
    cols = _find_columns(frame, ("user", "item"), ("rating", "timestamp"), path, what)
    if len(frame) == 0:
        raise DataError(f"{what} {path} has no rows; add at least one interaction")
    users = _ids(frame[cols["user"]], "user", path, what)
    items = _ids(frame[cols["item"]], "item", path, what)
    if "rating" in cols:
        ratings = _numbers(frame[cols["rating"]], "rating", path, what, "ratings must be numbers")
    else:
        ratings = np.ones(len(frame))
    timestamps = _timestamps(frame[cols["timestamp"]], path, what) if "timestamp" in cols else None
    # latest event per (user, item): order by time (stable, so the last row wins ties), keep the last
    _, u_codes = np.unique(users, return_inverse=True)
    _, i_codes = np.unique(items, return_inverse=True)
    pair = u_codes.astype(np.int64) * (int(i_codes.max()) + 1) + i_codes
    order = np.argsort(timestamps, kind="stable") if timestamps is not None else np.arange(len(pair))
    _, last_rev = np.unique(pair[order][::-1], return_index=True)
    keep = np.sort(order[len(pair) - 1 - last_rev])
    ts = timestamps[keep] if timestamps is not None else None
    return users[keep], items[keep], ratings[keep].astype(np.float32), ts


def read_item_text(path: str | os.PathLike[str], item_ids: np.ndarray) -> ItemText:
    """Item text aligned to `item_ids` (the dense catalogue order)."""
    path = Path(path).expanduser()
    what = "item-text file"
    frame = _read_table(path, what)
    cols = _find_columns(frame, ("item", "title"), ("year", "genres"), path, what)
    if len(frame) == 0:
        raise DataError(f"{what} {path} has no rows; add one row per item or leave the file out")
    ids = _ids(frame[cols["item"]], "item", path, what)
    if ids.dtype.kind != item_ids.dtype.kind:  # numeric ids in one file, text ids in the other
        ids, item_ids = ids.astype(str), item_ids.astype(str)
    titles_in = frame[cols["title"]].fillna("").astype(str).str.strip().to_numpy(dtype=object)
    if "year" in cols:
        years_in = pd.to_numeric(frame[cols["year"]], errors="coerce").fillna(-1).to_numpy().astype(np.int32)
    else:
        years_in = np.full(len(frame), -1, dtype=np.int32)
    if "genres" in cols:
        genres_in = [
            tuple(g.strip() for g in str(v).split(GENRE_SEPARATOR) if g.strip())
            for v in frame[cols["genres"]].fillna("").tolist()
        ]
    else:
        genres_in = [()] * len(frame)
    sorter = np.argsort(ids, kind="stable")
    pos = np.searchsorted(ids, item_ids, sorter=sorter)
    pos = np.minimum(pos, len(ids) - 1)
    row = sorter[pos]
    found = ids[row] == item_ids
    titles = [str(titles_in[r]) if f else "" for r, f in zip(row.tolist(), found.tolist())]
    years = np.where(found, years_in[row], -1).astype(np.int32)
    genres = [genres_in[r] if f else () for r, f in zip(row.tolist(), found.tolist())]
    return ItemText(titles, years, genres)


def load(path: str | os.PathLike[str], items: str | os.PathLike[str] | None = None, name: str | None = None) -> Dataset:
    """A Dataset from the user's interactions file (and item-text file); checksum over original ids."""
    path = Path(path).expanduser()
    users, item_col, ratings, ts = read_interactions(path)
    user_ids, user_index = np.unique(users, return_inverse=True)
    item_ids, item_index = np.unique(item_col, return_inverse=True)
    if items is not None:
        item_text = read_item_text(items, item_ids)
    else:
        item_text = ItemText(
            [""] * item_ids.shape[0], np.full(item_ids.shape[0], -1, np.int32), [()] * item_ids.shape[0]
        )
    interactions = Interactions(user_index.astype(np.int32), item_index.astype(np.int32), ratings, ts)
    source = str(path) if items is None else f"{path} + {items}"
    return Dataset(
        name or path.stem,
        interactions,
        int(user_ids.shape[0]),
        int(item_ids.shape[0]),
        item_text,
        user_ids,
        item_ids,
        source=source,
        checksum=fast_canonical_checksum(users, item_col, ratings, ts),
    )
