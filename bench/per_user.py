"""Each cell's per-user quality, kept compactly in its results so that any two cells can be compared on the
users they share (paired), not mean against mean over different users.

What is stored is what every per-user ranking figure follows from exactly: for each evaluated user, which of
their top-K positions hold a relevant item (one bit per position, K = the largest cut-off evaluated) and how
many relevant items they have. `PerUser.metric("ndcg@10")` recomputes each user's figure from those with the
same functions that produced the cell's means (bench.quality.per_user_metrics), so the two agree to the last
bit and recall, ndcg, hit, mrr and precision are there at every evaluated K. In `CellResult.per_user`:

    {"format": "recbench-per-user/1", "part": "test", "n": 943, "k": 20,
     "codec": "base64(zlib(little-endian array)); users: int32 gaps from -1; n_relevant: int32;
               hits: numpy packbits of each user's K hit flags, row by row",
     "users": "<...>", "n_relevant": "<...>", "hits": "<...>"}

About 4 kB of JSON per cell at K = 20 on ML-100K's 943 test users. Results without the key (written before it
existed, or cells without quality) read as "no per-user figures".
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.quality import PER_USER_METRICS, per_user_metrics

FORMAT = "recbench-per-user/1"
CODEC = (
    "base64(zlib(little-endian array)); users: int32 gaps from -1; n_relevant: int32; "
    "hits: numpy packbits of each user's K hit flags, row by row"
)


def _encode(raw: bytes) -> str:
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def _decode(text: Any, where: str) -> bytes:
    try:
        return zlib.decompress(base64.b64decode(str(text).encode("ascii"), validate=True))
    except (binascii.Error, zlib.error, ValueError, UnicodeEncodeError) as exc:
        raise BenchError(
            f"{where}: per-user figures are corrupt ({exc.__class__.__name__}); re-run the cell "
            "or delete its per_user entry to fall back to mean figures"
        ) from None


@dataclass(frozen=True)
class PerUser:
    """Evaluated user ids (ascending, unique), their (users, K) hit flags and number of relevant items."""

    users: np.ndarray
    hits: np.ndarray
    n_relevant: np.ndarray
    part: str = "test"

    @property
    def n(self) -> int:
        return int(self.users.size)

    @property
    def k(self) -> int:
        return int(self.hits.shape[1])

    def metric(self, name: str) -> np.ndarray | None:
        """Each user's figure of `name` (e.g. "ndcg@10"), aligned with `users`; None when not derivable."""
        base, _, k = name.partition("@")
        if base not in PER_USER_METRICS or not k.isdigit() or not 1 <= int(k) <= self.k:
            return None
        return per_user_metrics(self.hits, self.n_relevant, (int(k),))[name]

    def to_dict(self) -> dict[str, Any]:
        users = np.asarray(self.users, dtype=np.int64)
        hits = np.asarray(self.hits, dtype=bool)
        if users.size and (np.any(np.diff(users) <= 0) or users[0] < 0):
            raise ValueError("per-user ids must be unique, non-negative and ascending")
        if hits.ndim != 2 or hits.shape[0] != users.size or len(self.n_relevant) != users.size:
            raise ValueError(
                f"per-user hits {hits.shape} and n_relevant ({len(self.n_relevant)}) must have one row "
                f"per user ({users.size})"
            )
        return {
            "format": FORMAT,
            "part": self.part,
            "n": int(users.size),
            "k": int(hits.shape[1]),
            "codec": CODEC,
            "users": _encode(np.diff(users, prepend=-1).astype("<i4").tobytes()),
            "n_relevant": _encode(np.asarray(self.n_relevant).astype("<i4").tobytes()),
            "hits": _encode(np.packbits(hits, axis=1).tobytes()),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "per_user") -> PerUser:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            got = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise BenchError(
                f"{where}: per-user figures in an unknown format ({got!r}, expected {FORMAT!r}); "
                "upgrade recbench or re-run the cell"
            )
        n, k = data.get("n"), data.get("k")
        if not isinstance(n, int) or not isinstance(k, int) or n < 0 or k < 1:
            raise BenchError(f"{where}: per-user figures lack a valid n and k; the file is damaged, re-run the cell")
        gaps = np.frombuffer(_decode(data.get("users"), where), dtype="<i4").astype(np.int64)
        n_rel = np.frombuffer(_decode(data.get("n_relevant"), where), dtype="<i4").astype(np.int64)
        packed = np.frombuffer(_decode(data.get("hits"), where), dtype=np.uint8)
        width = (k + 7) // 8
        if gaps.size != n or n_rel.size != n or packed.size != n * width or np.any(gaps[1:] <= 0):
            raise BenchError(
                f"{where}: per-user figures do not hold {n} ascending users with {k} positions each; "
                "the file is damaged, re-run the cell"
            )
        hits = np.unpackbits(packed.reshape(n, width), axis=1, count=k).astype(bool)
        return cls(users=np.cumsum(gaps) - 1, hits=hits, n_relevant=n_rel, part=str(data.get("part", "test")))


def of_cell(cell: Any) -> PerUser | None:
    """The cell's per-user figures, or None where its results carry none (older results, cells without quality)."""
    data = getattr(cell, "per_user", None)
    if not data:
        return None
    return PerUser.from_dict(data, where=f"cell {getattr(cell, 'cell', '?')}")
