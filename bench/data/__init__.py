"""Datasets, their acquisition and verification, and splits.

load_dataset(name, data_dir=None, source_dir=None) -> Dataset
fetch(name, data_dir=None, source_dir=None) -> Path
make_split(dataset, protocol, seed) -> Split          (see bench.data.splits)
DATASETS / SPLITS                                    (for `recbench list`)
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.data.dataset import Dataset, Interactions, ItemText, Split, TrainSet, canonical_checksum
from bench.data.splits import SPLITS, make_split
from bench.errors import ConfigError, DataError

#: name -> one-line description, as `recbench list` shows them
DATASETS: dict[str, str] = {
    "ml-100k": "MovieLens-100K: 100,000 ratings, 943 users, 1,682 movies with titles/years/genres "
    "(GroupLens; research use only, never redistributed)",
    "synthetic": "generated, any size: synthetic:users=N,items=N,interactions=N,seed=N "
    "(Zipf popularity + latent topics; item text carries the topics)",
    "PATH.csv | PATH.parquet": "your own interactions (user, item[, rating][, timestamp]); "
    "add item text with PATH.csv?items=ITEMS.csv (item, title[, year][, genres a|b])",
}

_ITEMS_SEPARATOR = "?items="


def _split_file_spec(name: str) -> tuple[str, str | None]:
    path, sep, items = name.partition(_ITEMS_SEPARATOR)
    return path, (items if sep else None)


def _looks_like_file(name: str) -> bool:
    from bench.data.files import is_data_file

    path, _ = _split_file_spec(name)
    return is_data_file(path) or os.sep in path or "/" in path


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    source_dir: str | os.PathLike | None = None,
    *,
    items: str | os.PathLike | None = None,
    allow_download: bool = True,
    progress: bool | None = None,
) -> Dataset:
    """Load a dataset by name, verified and re-indexed.

    name:
      "ml-100k"                 MovieLens-100K; read in place from `source_dir` (a folder with u.data + u.item,
                                ml-100k.inter + ml-100k.item, a recbole wheel or ml-100k.zip), else the cache in
                                `data_dir` (default: $RECBENCH_DATA_DIR, else the user cache directory), else
                                downloaded (GroupLens archive, then the recbole==1.2.1 wheel from PyPI).
      "synthetic"               the default synthetic set (1,000 users, 500 items, 20,000 interactions, seed 0);
      "synthetic:users=1000,items=500,interactions=20000,seed=0"   any subset of the keys, any order;
      "path/to/ratings.csv"     your own data, .csv/.tsv/.parquet (see bench.data.files);
      "path/to/ratings.csv?items=path/to/items.csv"   ... with an item-text file (or pass items=...).
    Unknown names raise ConfigError listing the choices; missing or corrupt files raise DataError.
    """
    name = str(name).strip()
    if name == "ml-100k":
        from bench.data import movielens

        return movielens.load(data_dir, source_dir, allow_download=allow_download, progress=progress)
    if name == "synthetic" or name.startswith("synthetic:"):
        from bench.data import synthetic

        cfg = synthetic.parse_spec(name)
        return synthetic.generate(cfg.n_users, cfg.n_items, cfg.n_interactions, cfg.seed, n_topics=cfg.n_topics)
    if _looks_like_file(name):
        from bench.data import files

        path, spec_items = _split_file_spec(name)
        if not files.is_data_file(path):
            raise ConfigError(f"dataset file {path} must end in .csv, .tsv or .parquet; convert it or rename it")
        return files.load(path, items if items is not None else spec_items)
    raise ConfigError(
        f"unknown dataset {name!r}; choose ml-100k, synthetic[:users=N,items=N,interactions=N,seed=N] "
        f"or a path to a .csv/.parquet file"
    )


def fetch(
    name: str,
    data_dir: str | os.PathLike | None = None,
    source_dir: str | os.PathLike | None = None,
    *,
    progress: bool | None = None,
) -> Path:
    """Make a dataset available offline and verify it; returns where it lives (for `recbench data fetch`).

    ml-100k: acquires into the cache and verifies the content checksum; with `source_dir` (the CLI's --from)
    the user's copy is verified, then copied into the cache, so later runs need no flag.
    A file dataset: checks it parses. Synthetic data is generated on demand and has nothing to fetch.
    """
    name = str(name).strip()
    if name == "ml-100k":
        from bench.data import movielens

        return movielens.fetch(data_dir, source_dir, progress=progress)
    if name == "synthetic" or name.startswith("synthetic:"):
        raise ConfigError(f"{name} is generated on demand; there is nothing to fetch (use it directly)")
    if _looks_like_file(name):
        load_dataset(name)
        return Path(_split_file_spec(name)[0]).expanduser()
    raise ConfigError(f"unknown dataset {name!r}; choose ml-100k or a path to a .csv/.parquet file")


__all__ = [
    "DATASETS",
    "SPLITS",
    "Dataset",
    "DataError",
    "ConfigError",
    "Interactions",
    "ItemText",
    "Split",
    "TrainSet",
    "canonical_checksum",
    "fetch",
    "load_dataset",
    "make_split",
]
