"""Item ids as token sequences: each user's TRAIN items in time order, the windows a next-item decoder trains
on, and right-padded batches.

Tokens are dense item indices 0..n_items-1 plus one extra id, `n_items`, that opens a history (BOS) and pads
batches. Padding sits after the real tokens, so in a causal model it never changes a real position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.data.dataset import Interactions


def user_sequences(interactions: Interactions, n_users: int) -> list[np.ndarray]:
    """Per user, the item ids in time order (int64). Equal timestamps (ML-100K has many same-second ratings)
    keep the order the rows came in; without timestamps the row order is the time order."""
    n = len(interactions)
    ts = interactions.timestamps if interactions.timestamps is not None else np.zeros(n, dtype=np.int64)
    order = np.lexsort((np.arange(n), ts, interactions.users))
    users = interactions.users[order].astype(np.int64)
    items = interactions.items[order].astype(np.int64)
    bounds = np.searchsorted(users, np.arange(n_users + 1))
    return [items[bounds[u] : bounds[u + 1]] for u in range(n_users)]


def history_tokens(items: np.ndarray, max_len: int, bos: int) -> np.ndarray:
    """What the model reads to predict a user's next item: BOS then the items while they fit in `max_len`,
    else the last `max_len` items (a training window's context is exactly that too)."""
    if len(items) + 1 <= max_len:
        return np.concatenate([[bos], items]).astype(np.int64)
    return np.asarray(items[-max_len:], dtype=np.int64)


@dataclass(frozen=True)
class Window:
    """One training sequence: inputs[j] is read to predict targets[j] (the item that came next)."""

    inputs: np.ndarray  # (L,) int64
    targets: np.ndarray  # (L,) int64


def training_windows(sequences: list[np.ndarray], max_len: int, bos: int) -> list[Window]:
    """Every item of every sequence is a target exactly once per epoch.

    A sequence longer than `max_len` is cut into windows from its end backwards, so the most recent items get
    the full context; the oldest window starts with BOS and may be shorter.
    """
    out: list[Window] = []
    for items in sequences:
        tokens = np.concatenate([[bos], items]).astype(np.int64)
        end = len(items)
        while end > 0:
            start = max(0, end - max_len)
            out.append(Window(tokens[start:end], tokens[start + 1 : end + 1]))
            end = start
    return out


def hold_out_last(sequences: list[np.ndarray], min_len: int = 3) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(sequences without their last item where they have >= min_len items, users held out, their last items).

    The early-stopping signal comes from TRAIN alone (fit never sees the valid split): each such user's latest
    train item is predicted from the items before it, and is never a training target.
    """
    kept, users, targets = [], [], []
    for u, items in enumerate(sequences):
        if len(items) >= min_len:
            kept.append(items[:-1])
            users.append(u)
            targets.append(int(items[-1]))
        else:
            kept.append(items)
    return kept, np.asarray(users, dtype=np.int64), np.asarray(targets, dtype=np.int64)


def pad_right(sequences: list[np.ndarray], pad: int, fill_targets: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(B, L) int64 ids padded with `pad` after each sequence, and the (B,) lengths. With `fill_targets` the
    padding is -100 instead (the value cross-entropy ignores)."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    width = int(lengths.max()) if len(sequences) else 0
    ids = np.full((len(sequences), width), -100 if fill_targets else pad, dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
    return ids, lengths
