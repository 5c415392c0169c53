"""Replay: a dataset's interactions in timestamp order, absorbed window by window (the `online` scenario).

An initial fit sees every interaction before the cut time T0; the rest of the timeline is cut into fixed
windows [T0 + k*W, T0 + (k+1)*W). Each window brings new interactions, users first seen in it and items first
seen in it. Evaluation point n (0 <= n < number of windows) asks: having absorbed everything before window n,
how well does a model rank what users do in window n?

At point n:
- history = every interaction before window n starts (what a model may have fitted on; nothing later);
- catalogue = the items of the history (an item exists once someone has interacted with it);
- evaluated users = users active in window n who have history and at least one window-n interaction on an
  item of the catalogue; their relevant items are those interactions (items first seen in window n itself
  cannot be recommended by anyone yet, so they are left out of every strategy's targets alike);
- seen items (excluded from ranking) = the user's history;
- fresh items = items first seen in the window before n ([start_n - W, start_n)): what fresh-item recall is on.

A pure data module: arrays in, arrays out; it knows nothing of models, timing or results. The spec string
`replay[:start=0.5,window_days=7,windows=0]` (start: where T0 sits as a share of the timeline's span;
windows: at most this many windows, 0 = up to the end) is the cell's split name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from bench.data.dataset import Dataset, Interactions, TrainSet
from bench.errors import ConfigError

PROTOCOL = "replay"
DAY_S = 86_400
_KEYS = {"start": float, "window_days": float, "windows": int}


@dataclass(frozen=True)
class ReplayConfig:
    #: T0 as a share of the timeline's span (0.5 = the middle of the time range)
    start: float = 0.5
    window_days: float = 7.0
    #: at most this many windows (0 = every window to the end of the data)
    windows: int = 0

    @property
    def window_s(self) -> int:
        return int(round(self.window_days * DAY_S))

    def validate(self) -> ReplayConfig:
        if not 0.0 < self.start < 1.0:
            raise ConfigError(
                f"replay start={self.start:g} must lie strictly between 0 and 1 (a share of the timeline)"
            )
        if not self.window_days > 0 or self.window_s < 1:
            raise ConfigError(f"replay window_days={self.window_days:g} must be positive (at least one second)")
        if self.windows < 0:
            raise ConfigError(f"replay windows={self.windows} must be >= 0 (0 = every window to the end)")
        return self


def is_replay(split_name: str) -> bool:
    return split_name == PROTOCOL or split_name.startswith(PROTOCOL + ":")


def parse_spec(spec: str) -> ReplayConfig:
    """`replay` or `replay:start=0.5,window_days=7,windows=15` -> ReplayConfig (ConfigError on anything else)."""
    if not is_replay(spec):
        raise ConfigError(f"{spec!r} is not a replay spec: use replay[:start=0.5,window_days=7,windows=0]")
    values: dict[str, Any] = {}  # each key's type is _KEYS[key]
    _, _, rest = spec.partition(":")
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, raw = part.partition("=")
        if not sep or key not in _KEYS:
            raise ConfigError(f"replay spec {spec!r}: {part!r} is not one of {', '.join(k + '=N' for k in _KEYS)}")
        try:
            values[key] = _KEYS[key](raw)
        except ValueError:
            raise ConfigError(f"replay spec {spec!r}: {key}={raw!r} is not a {_KEYS[key].__name__}") from None
    return ReplayConfig(**values).validate()


@dataclass(frozen=True)
class Window:
    index: int
    start_s: int
    end_s: int  # exclusive
    interactions: Interactions  # in time order
    new_users: np.ndarray  # first seen in this window (int64, sorted)
    new_items: np.ndarray

    @property
    def changed_users(self) -> np.ndarray:
        """Users with at least one interaction in this window (sorted)."""
        return np.unique(self.interactions.users).astype(np.int64)


@dataclass(frozen=True)
class Update:
    """What a strategy receives when it absorbs one window."""

    step: int  # 1-based: windows absorbed after this update
    window: Window
    history: TrainSet  # every interaction up to the end of `window` (catalogue = its items)


@dataclass(frozen=True)
class Target:
    """Evaluation point n: who is ranked, against what, excluding what."""

    point: int
    users: np.ndarray  # int64, sorted
    relevant: sp.csr_matrix  # n_users x n_items, binary: window-n interactions on catalogue items
    seen: sp.csr_matrix  # n_users x n_items, binary: the history (excluded from ranking)
    fresh_items: np.ndarray  # first seen in [start_n - W, start_n)


@dataclass(frozen=True)
class Replay:
    dataset: Dataset
    config: ReplayConfig
    t0_s: int
    order: np.ndarray  # row indices of dataset.interactions in (timestamp, row) order
    windows: tuple[Window, ...]

    @property
    def n_users(self) -> int:
        return self.dataset.n_users

    @property
    def n_items(self) -> int:
        return self.dataset.n_items

    @cached_property
    def _times(self) -> np.ndarray:
        return _timestamps(self.dataset)[self.order]

    def _before(self, t: int) -> Interactions:
        """Interactions with timestamp < t, in time order."""
        stop = int(np.searchsorted(self._times, t, side="left"))
        return self.dataset.interactions.subset(self.order[:stop])

    def start_of(self, point: int) -> int:
        """Start time of window `point` (point == len(windows): the end of the last window)."""
        if point < len(self.windows):
            return self.windows[point].start_s
        return self.windows[-1].end_s

    def history(self, point: int) -> Interactions:
        """Everything before window `point` starts: what a model absorbed by evaluation point `point`."""
        if not 0 <= point <= len(self.windows):
            raise ValueError(f"point {point} outside 0..{len(self.windows)}")
        return self._before(self.start_of(point))

    def train_set(self, point: int) -> TrainSet:
        inter = self.history(point)
        return TrainSet(
            inter,
            self.n_users,
            self.n_items,
            self.dataset.item_text,
            known_items=np.unique(inter.items).astype(np.int64),
        )

    @property
    def initial(self) -> TrainSet:
        return self.train_set(0)

    def update(self, step: int) -> Update:
        """The update that absorbs window step - 1 (step = 1 .. len(windows) - 1 for evaluated replays)."""
        return Update(step, self.windows[step - 1], self.train_set(step))

    def target(self, point: int) -> Target:
        hist = self.history(point)
        window = self.windows[point].interactions
        known = np.zeros(self.n_items, dtype=bool)
        known[hist.items] = True
        has_history = np.zeros(self.n_users, dtype=bool)
        has_history[hist.users] = True
        keep = known[window.items] & has_history[window.users]
        relevant = window.subset(keep).matrix(self.n_users, self.n_items)
        users = np.flatnonzero(np.diff(relevant.indptr) > 0).astype(np.int64)
        start = self.start_of(point)
        fresh = self._first_seen_between(start - self.config.window_s, start)
        return Target(point, users, relevant, hist.matrix(self.n_users, self.n_items), fresh)

    @cached_property
    def _item_first_seen(self) -> np.ndarray:
        inter = self.dataset.interactions
        first = np.full(self.n_items, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, inter.items.astype(np.int64), _timestamps(self.dataset).astype(np.int64))
        return first

    def _first_seen_between(self, lo: int, hi: int) -> np.ndarray:
        first = self._item_first_seen
        return np.flatnonzero((first >= lo) & (first < hi)).astype(np.int64)

    def describe(self) -> dict:
        """Plain figures about the windows (for the results: the same replay for every strategy)."""
        return {
            "spec": self.config.__dict__,
            "t0_s": self.t0_s,
            "window_s": self.config.window_s,
            "n_initial": int(np.searchsorted(self._times, self.t0_s, side="left")),
            "windows": [
                {
                    "index": w.index,
                    "start_s": w.start_s,
                    "end_s": w.end_s,
                    "events": len(w.interactions),
                    "new_users": int(w.new_users.size),
                    "new_items": int(w.new_items.size),
                }
                for w in self.windows
            ],
        }


def _timestamps(dataset: Dataset) -> np.ndarray:
    """The dataset's event times; a replay of a dataset without them is refused with what to do."""
    ts = dataset.interactions.timestamps
    if ts is None:
        raise ConfigError(f"a replay needs timestamps and {dataset.name} has none: use a dataset with time stamps")
    return ts


def make_replay(dataset: Dataset, config: ReplayConfig | str = ReplayConfig()) -> Replay:
    """Cut `dataset` into an initial part and fixed windows (see the module docstring)."""
    if isinstance(config, str):
        config = parse_spec(config)
    config.validate()
    inter = dataset.interactions
    ts = _timestamps(dataset).astype(np.int64)
    if len(inter) == 0:
        raise ConfigError(f"{dataset.name} has no interactions to replay")
    order = np.lexsort((np.arange(len(ts)), ts))  # time order; ties keep the file's order
    times = ts[order]
    t_min, t_max = int(times[0]), int(times[-1])
    t0 = t_min + int(math.floor(config.start * (t_max - t_min)))
    w = config.window_s
    n_windows = max(1, -(-(t_max + 1 - t0) // w))
    if config.windows:
        n_windows = min(n_windows, config.windows)
    if t0 <= t_min or n_windows < 2:
        raise ConfigError(
            f"replay {config}: the timeline ({(t_max - t_min) / DAY_S:.1f} days) leaves no initial "
            "part or fewer than 2 windows; move start or shorten window_days"
        )
    users = inter.users.astype(np.int64)[order]
    items = inter.items.astype(np.int64)[order]
    windows = []
    seen_users = np.zeros(dataset.n_users, dtype=bool)
    seen_items = np.zeros(dataset.n_items, dtype=bool)
    lo = int(np.searchsorted(times, t0, side="left"))
    seen_users[users[:lo]] = True
    seen_items[items[:lo]] = True
    for k in range(n_windows):
        start, end = t0 + k * w, t0 + (k + 1) * w
        hi = int(np.searchsorted(times, end, side="left"))
        u, i = users[lo:hi], items[lo:hi]
        new_users = np.unique(u[~seen_users[u]])
        new_items = np.unique(i[~seen_items[i]])
        seen_users[u] = True
        seen_items[i] = True
        windows.append(Window(k, start, end, inter.subset(order[lo:hi]), new_users, new_items))
        lo = hi
    return Replay(dataset, config, t0, order, tuple(windows))
