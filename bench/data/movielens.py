"""MovieLens-100K: acquire, verify, parse.

Acquisition, first that works wins:
  (a) a directory (or file) the user names: GroupLens `u.data` + `u.item`, RecBole atomic
      `ml-100k.inter` + `ml-100k.item`, a recbole wheel, or the GroupLens `ml-100k.zip`; read in place;
  (b) the cached copy under `<data dir>/ml-100k/` (the GroupLens zip or the recbole wheel), sha256 checked;
  (c) the GroupLens archive, downloaded with a short timeout (it fails in seconds when offline);
  (d) the `recbole==1.2.1` wheel from PyPI via `pip download` (a plain file: never installed), which
      carries the same data at `recbole/dataset_example/ml-100k/`; read straight from the zip.

Whatever the source, the parsed interactions must match ML100K_CHECKSUM, a layout-independent checksum of
the sorted (user, item, rating, timestamp) rows in original ids. The wheel's `ml-100k.inter`, minus its
header, is byte-identical to GroupLens's published `u.data` (GROUPLENS_UDATA_SHA256), so both routes give
the same data; the two parsers give the same Dataset, item text included.

The MovieLens licence allows research use and forbids redistribution: nothing here is ever committed.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.data.cache import (
    copy_dir_atomically,
    copy_file_atomically,
    download_url,
    ensure_dir,
    pip_download,
    resolve_data_dir,
    sha256_file,
    verify_manifest,
)
from bench.data.checksum import fast_canonical_checksum
from bench.data.dataset import Dataset, Interactions, ItemText
from bench.errors import DataError

NAME = "ml-100k"

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
GROUPLENS_ZIP_NAME = "ml-100k.zip"
#: sha256 of the GroupLens archive (4,924,029 bytes), as published by several independent projects
#: (e.g. scikit-learn-style fetchers and dataset registries); its md5 0e33842e24a9c977be4e0107933c0723 too.
GROUPLENS_ZIP_SHA256 = "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"
#: sha256 of GroupLens's `ml-100k/u.data` (1,979,173 bytes); the wheel's .inter body hashes to the same.
GROUPLENS_UDATA_SHA256 = "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"

RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_WHEEL_NAME = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE_MEMBER_PREFIX = "recbole/dataset_example/ml-100k/"

#: bench.data.dataset.canonical_checksum() of ML-100K's 100,000 interactions in original ids, computed from the real data
#: (both the recbole wheel and a GroupLens-layout copy give it).
ML100K_CHECKSUM = "6cfffb52c89b05fbc3afb75f6912eeda04c81c2add0dc58e773a0ef6c8adb160"
ML100K_ROWS, ML100K_USERS, ML100K_ITEMS = 100_000, 943, 1_682

#: the 19 genre flags of u.item, in file order; "unknown" is a flag, not a genre, and is dropped from text
GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
_GENRE_ORDER = {g: i for i, g in enumerate(GENRES)}

FETCH_HINT = (
    "run `recbench data fetch ml-100k`, or `recbench data fetch ml-100k --from DIR` with a folder "
    "holding u.data + u.item (GroupLens) or ml-100k.inter + ml-100k.item (RecBole)"
)
#: folder in the cache holding a verified copy of data the user supplied (loose files or another archive)
LOCAL_COPY = "local"


# ---------------------------------------------------------------- parsing (layout -> common tables)


@dataclass(frozen=True)
class RawMovieLens:
    """Parsed rows in original ids, before re-indexing. Item tables are parallel arrays/lists."""

    users: np.ndarray  # int64 original user ids, one per interaction
    items: np.ndarray  # int64 original item ids
    ratings: np.ndarray  # float32
    timestamps: np.ndarray  # int64 seconds
    item_table_ids: np.ndarray  # int64
    titles: list[str]
    years: np.ndarray  # int32, -1 unknown
    genres: list[tuple[str, ...]]

    def checksum(self) -> str:
        return fast_canonical_checksum(self.users, self.items, self.ratings, self.timestamps)


_YEAR_IN_TITLE = re.compile(r"\((\d{4})\)")


def split_title_year(raw: str) -> tuple[str, int]:
    """ "Toy Story (1995)" -> ("Toy Story", 1995); the *last* "(yyyy)" wins, so GroupLens's
    "... Giving (1995) (V)" -> ("... Giving (V)", 1995); no year -> (title, -1)."""
    matches = list(_YEAR_IN_TITLE.finditer(raw))
    if not matches:
        return " ".join(raw.split()), -1
    m = matches[-1]
    return " ".join((raw[: m.start()] + " " + raw[m.end() :]).split()), int(m.group(1))


def _genre_tuple(names) -> tuple[str, ...]:
    kept = [g for g in names if g and g != "unknown"]
    return tuple(sorted(kept, key=lambda g: (_GENRE_ORDER.get(g, len(GENRES)), g)))


def _interaction_arrays(frame: pd.DataFrame, what: str) -> tuple[np.ndarray, ...]:
    if len(frame) == 0:
        raise DataError(f"{what} holds no rows; {FETCH_HINT}")
    try:
        users = frame.iloc[:, 0].to_numpy(dtype=np.int64)
        items = frame.iloc[:, 1].to_numpy(dtype=np.int64)
        ratings = frame.iloc[:, 2].to_numpy(dtype=np.float64)
        ts_float = frame.iloc[:, 3].to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{what} is malformed ({exc}); {FETCH_HINT}") from None
    if np.isnan(ratings).any() or np.isnan(ts_float).any():
        raise DataError(f"{what} has empty fields; {FETCH_HINT}")
    return users, items, ratings.astype(np.float32), ts_float.astype(np.int64)


def parse_grouplens(u_data: bytes, u_item: bytes, where: str = "") -> RawMovieLens:
    """GroupLens layout: u.data `user<TAB>item<TAB>rating<TAB>timestamp`; u.item pipe-separated latin-1
    `id|title (year)|release date|video date|IMDb URL|19 genre flags`."""
    try:
        inter = pd.read_csv(io.BytesIO(u_data), sep="\t", header=None, quoting=csv.QUOTE_NONE, usecols=[0, 1, 2, 3])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise DataError(f"{where}u.data cannot be parsed ({exc}); {FETCH_HINT}") from None
    users, items, ratings, ts = _interaction_arrays(inter, f"{where}u.data")
    try:
        table = pd.read_csv(
            io.BytesIO(u_item),
            sep="|",
            header=None,
            encoding="latin-1",
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_NONE,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{where}u.item cannot be parsed ({exc}); {FETCH_HINT}") from None
    if table.shape[1] != 5 + len(GENRES):
        raise DataError(f"{where}u.item has {table.shape[1]} columns, expected {5 + len(GENRES)}; {FETCH_HINT}")
    ids = table[0].astype(np.int64).to_numpy()
    title_year = [split_title_year(t) for t in table[1].tolist()]
    flags = table.iloc[:, 5:].to_numpy(dtype=np.int8).astype(bool)
    genre_names = np.array(GENRES, dtype=object)
    genres = [_genre_tuple(genre_names[row]) for row in flags]
    return _raw(users, items, ratings, ts, ids, title_year, genres)


def _raw(users, items, ratings, ts, ids, title_year: list[tuple[str, int]], genres) -> RawMovieLens:
    """The parsed columns as one RawMovieLens, titles and years taken apart (both sources end here)."""
    return RawMovieLens(
        users,
        items,
        ratings,
        ts,
        ids,
        [t for t, _ in title_year],
        np.array([y for _, y in title_year], dtype=np.int32),
        genres,
    )


def _atomic_frame(data: bytes, what: str) -> pd.DataFrame:
    """RecBole atomic file: tab-separated, header `name:type` (token, float, token_seq, float_seq)."""
    try:
        frame = pd.read_csv(
            io.BytesIO(data), sep="\t", dtype=str, keep_default_na=False, encoding="utf-8", quoting=csv.QUOTE_NONE
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{what} cannot be parsed ({exc}); {FETCH_HINT}") from None
    frame.columns = [c.split(":", 1)[0] for c in frame.columns]
    return frame


def _require_columns(frame: pd.DataFrame, needed: tuple[str, ...], what: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{what} lacks column(s) {', '.join(missing)} (has {', '.join(frame.columns)}); {FETCH_HINT}")


def parse_recbole(inter: bytes, item: bytes, where: str = "") -> RawMovieLens:
    """RecBole atomic layout: ml-100k.inter (user_id, item_id, rating, timestamp) and ml-100k.item
    (item_id, movie_title, release_year, class). RecBole split GroupLens's title at its last " (", so
    the title is rebuilt as GroupLens wrote it and split by the same rule as parse_grouplens."""
    frame = _atomic_frame(inter, f"{where}ml-100k.inter")
    _require_columns(frame, ("user_id", "item_id", "rating", "timestamp"), f"{where}ml-100k.inter")
    users, items, ratings, ts = _interaction_arrays(
        frame[["user_id", "item_id", "rating", "timestamp"]], f"{where}ml-100k.inter"
    )
    table = _atomic_frame(item, f"{where}ml-100k.item")
    _require_columns(table, ("item_id", "movie_title"), f"{where}ml-100k.item")
    ids = table["item_id"].astype(np.int64).to_numpy()
    raw_titles = table["movie_title"].tolist()
    raw_years = table["release_year"].tolist() if "release_year" in table else [""] * len(table)
    classes = table["class"].tolist() if "class" in table else [""] * len(table)
    title_year = []
    for title, year in zip(raw_titles, raw_years):
        # RecBole's copy misspells the one unknown movie ("unkonwn", GroupLens id 267) in title and year
        title = "unknown" if title == "unkonwn" else title
        year = "" if year in ("unkonwn", "unknown") else year
        title_year.append(split_title_year(f"{title} ({year})" if year else title))
    genres = [_genre_tuple(c.split(" ")) for c in classes]
    return _raw(users, items, ratings, ts, ids, title_year, genres)


def to_dataset(
    raw: RawMovieLens, source: str, expected_checksum: str | None = ML100K_CHECKSUM, checked_file: str = ""
) -> Dataset:
    """Verify the content checksum, re-index users/items densely (sorted original ids), attach item text."""
    checksum = raw.checksum()
    if expected_checksum is not None and checksum != expected_checksum:
        raise DataError(
            f"{checked_file or source}: content checksum {checksum[:16]}... does not match MovieLens-100K's "
            f"{expected_checksum[:16]}... (corrupt or not ML-100K); replace it, or delete the cached copy and "
            f"{FETCH_HINT}"
        )
    user_ids, users = np.unique(raw.users, return_inverse=True)
    item_ids, items = np.unique(raw.items, return_inverse=True)
    # item text aligned to the dense item index; catalogue items absent from the item file get blanks
    pos = {int(i): k for k, i in enumerate(raw.item_table_ids.tolist())}
    rows = [pos.get(int(i), -1) for i in item_ids.tolist()]
    titles = [raw.titles[r] if r >= 0 else "" for r in rows]
    years = np.array([raw.years[r] if r >= 0 else -1 for r in rows], dtype=np.int32)
    genres = [raw.genres[r] if r >= 0 else () for r in rows]
    interactions = Interactions(
        users.astype(np.int32), items.astype(np.int32), raw.ratings.astype(np.float32), raw.timestamps.astype(np.int64)
    )
    return Dataset(
        NAME,
        interactions,
        int(user_ids.shape[0]),
        int(item_ids.shape[0]),
        ItemText(titles, years, genres),
        user_ids,
        item_ids,
        source=source,
        checksum=checksum,
    )


# ---------------------------------------------------------------- reading a located source

Reader = Callable[[str], bytes]


def _zip_reader(path: Path, prefix: str) -> Reader:
    def read(name: str) -> bytes:
        with zipfile.ZipFile(path) as zf:
            return zf.read(prefix + name)

    return read


def _zip_prefix(path: Path, marker: str) -> str | None:
    """Folder inside the zip that holds `marker` (e.g. "u.data"), or None."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path} is not a readable zip archive ({exc}); delete it and {FETCH_HINT}") from None
    for n in names:
        if n == marker or n.endswith("/" + marker):
            return n[: len(n) - len(marker)]
    return None


def find_layout(path: Path) -> tuple[str, Path]:
    """("grouplens" | "recbole", folder) for loose files, or ("archive", file) for a zip/wheel."""
    path = Path(path)
    if path.is_dir():
        for folder in (path, path / NAME):
            if (folder / "u.data").is_file() and (folder / "u.item").is_file():
                return "grouplens", folder
            if (folder / f"{NAME}.inter").is_file() and (folder / f"{NAME}.item").is_file():
                return "recbole", folder
        for archive in sorted(path.glob("recbole-*.whl")) + sorted(path.glob(GROUPLENS_ZIP_NAME)):
            return "archive", archive
        raise DataError(
            f"{path} holds no MovieLens-100K files (u.data + u.item, ml-100k.inter + ml-100k.item, "
            f"a recbole wheel or {GROUPLENS_ZIP_NAME}); point --from at such a folder, or leave "
            f"it out to download the data"
        )
    if not path.is_file():
        raise DataError(f"{path} does not exist; {FETCH_HINT}")
    return "archive", path


def read_source(path: Path) -> Dataset:
    """Parse and verify ML-100K from a directory, a GroupLens zip or a recbole wheel."""
    kind, path = find_layout(path)
    if kind == "grouplens":
        raw = parse_grouplens((path / "u.data").read_bytes(), (path / "u.item").read_bytes(), f"{path}/")
        return to_dataset(raw, f"directory {path} (GroupLens layout)", checked_file=str(path / "u.data"))
    if kind == "recbole":
        raw = parse_recbole((path / f"{NAME}.inter").read_bytes(), (path / f"{NAME}.item").read_bytes(), f"{path}/")
        return to_dataset(raw, f"directory {path} (RecBole atomic layout)", checked_file=str(path / f"{NAME}.inter"))
    prefix = _zip_prefix(path, "u.data")
    if prefix is not None:
        read = _zip_reader(path, prefix)
        raw = parse_grouplens(read("u.data"), read("u.item"), f"{path}:{prefix}")
        return to_dataset(raw, f"GroupLens archive {path}", checked_file=f"{path}:{prefix}u.data")
    prefix = _zip_prefix(path, f"{NAME}.inter")
    if prefix is not None:
        read = _zip_reader(path, prefix)
        raw = parse_recbole(read(f"{NAME}.inter"), read(f"{NAME}.item"), f"{path}:{prefix}")
        return to_dataset(raw, f"recbole wheel {path.name} ({path})", checked_file=f"{path}:{prefix}{NAME}.inter")
    raise DataError(f"{path} contains neither u.data nor {NAME}.inter; {FETCH_HINT}")


# ---------------------------------------------------------------- acquisition


def cache_dir(data_dir=None) -> Path:
    return resolve_data_dir(data_dir) / NAME


def _cached_file(folder: Path) -> Path | None:
    """A cached archive, sha256 verified; a corrupt one is an error naming it (never silently reused)."""
    for name, sha in ((GROUPLENS_ZIP_NAME, GROUPLENS_ZIP_SHA256), (RECBOLE_WHEEL_NAME, RECBOLE_WHEEL_SHA256)):
        path = folder / name
        if path.is_file():
            if sha256_file(path) != sha:
                raise DataError(
                    f"cached file {path} is corrupt (sha256 mismatch); delete it and run `recbench data fetch ml-100k`"
                )
            return path
    local = folder / LOCAL_COPY
    if not local.is_dir():
        return None
    # a copy of the user's files: every file against the sha256 recorded at copy time (item text included,
    # which the content checksum does not cover), then read_source verifies the interactions
    verify_manifest(local, f"delete {local} and run `recbench data fetch ml-100k --from DIR` again")
    return local


def locate(
    data_dir=None,
    source_dir=None,
    *,
    allow_download: bool = True,
    progress: bool | None = None,
    connect_timeout_s: float = 3.0,
    grouplens_url: str = GROUPLENS_URL,
) -> Path:
    """Path of a verified ML-100K source: the user's directory, the cache, or a fresh download into the cache."""
    if source_dir is not None:
        path = Path(source_dir).expanduser()
        if not path.exists():
            raise DataError(
                f"{path} does not exist; name a folder holding u.data + u.item or "
                f"ml-100k.inter + ml-100k.item, or leave it out to download the data"
            )
        return path
    folder = cache_dir(data_dir)
    cached = _cached_file(folder) if folder.is_dir() else None
    if cached is not None:
        return cached
    if not allow_download:
        raise DataError(f"MovieLens-100K is not in the cache {folder}; {FETCH_HINT}")
    ensure_dir(folder)
    failures = []
    try:
        return download_url(
            grouplens_url,
            folder / GROUPLENS_ZIP_NAME,
            GROUPLENS_ZIP_SHA256,
            connect_timeout_s=connect_timeout_s,
            progress=progress,
            description="MovieLens-100K (GroupLens)",
        )
    except (OSError, DataError) as exc:  # URLError and socket timeouts are OSErrors
        failures.append(f"GroupLens: {exc}")
    try:
        return pip_download(RECBOLE_REQUIREMENT, folder / RECBOLE_WHEEL_NAME, RECBOLE_WHEEL_SHA256, progress=progress)
    except DataError as exc:
        failures.append(f"PyPI recbole wheel: {exc}")
    raise DataError(
        f"could not obtain MovieLens-100K ({' | '.join(failures)}); with a local copy, run "
        f"`recbench data fetch ml-100k --from DIR` (DIR holding u.data + u.item or "
        f"ml-100k.inter + ml-100k.item)"
    )


def load(data_dir=None, source_dir=None, *, allow_download: bool = True, progress: bool | None = None) -> Dataset:
    """ML-100K as a verified Dataset (name "ml-100k", checksum set), acquiring it if needed."""
    return read_source(locate(data_dir, source_dir, allow_download=allow_download, progress=progress))


def fetch(data_dir=None, source_dir=None, *, progress: bool | None = None) -> Path:
    """Put a verified ML-100K into the cache and return its path there.

    Without `source_dir`: the cache, else a download (see locate). With it: the user's data is parsed and
    checked against ML100K_CHECKSUM first, then copied into the cache atomically, so later runs find it
    without the flag. An archive with a known sha256 keeps its canonical name; anything else goes to
    `<cache>/ml-100k/local/`.
    """
    if source_dir is None:
        path = locate(data_dir, None, progress=progress)
        read_source(path)
        return path
    kind, path = find_layout(Path(source_dir).expanduser())
    read_source(path)  # verify before anything is written
    folder = ensure_dir(cache_dir(data_dir))
    if kind == "archive":
        known = {GROUPLENS_ZIP_SHA256: GROUPLENS_ZIP_NAME, RECBOLE_WHEEL_SHA256: RECBOLE_WHEEL_NAME}
        name = known.get(sha256_file(path))
        if name is not None:
            return copy_file_atomically(path, folder / name)
        archive_name = path.name if path.name.startswith("recbole-") else GROUPLENS_ZIP_NAME
        return copy_dir_atomically([path], folder / LOCAL_COPY, names=[archive_name])
    names = ["u.data", "u.item"] if kind == "grouplens" else [f"{NAME}.inter", f"{NAME}.item"]
    return copy_dir_atomically([path / n for n in names], folder / LOCAL_COPY)
