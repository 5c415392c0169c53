"""The next-item decoder's architecture and its training loop: full-softmax cross-entropy over the catalogue,
Adam, a time budget, early stopping on a hold-out taken from TRAIN.

Architecture: a GPT-NeoX-style decoder from `transformers` (pre-LayerNorm blocks applied in sequence, rotary
positions, causal self-attention, GELU MLP 4x wide), so the variants' loaders, quantisers and ONNX export run
it as they run any Hugging Face model, and every projection is an `nn.Linear` (PyTorch's dynamic int8 finds
them; GPT-2's Conv1D it would not). Item tokens are embedded once; the output layer is that embedding
transposed (tied, as in SASRec) plus a per-item bias, kept outside the transformer: the score of item i for a
user is h . e_i + b_i with h the last layer at the user's last history position.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bench.recommenders.generative.item_sequences import Window, history_tokens, pad_right
from bench.recommenders.llm.projection import TrainLog


@dataclass(frozen=True)
class DecoderShape:
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    max_len: int = 50  # positions read per user: the most recent max_len history tokens
    dropout: float = 0.2

    def config(self, n_items: int):
        from transformers import GPTNeoXConfig

        return GPTNeoXConfig(
            vocab_size=n_items + 1,
            hidden_size=self.hidden,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            intermediate_size=4 * self.hidden,
            max_position_embeddings=self.max_len,
            rotary_pct=1.0,
            use_parallel_residual=False,
            hidden_dropout=self.dropout,
            attention_dropout=self.dropout,
            tie_word_embeddings=False,
            bos_token_id=n_items,
            eos_token_id=n_items,
            pad_token_id=n_items,
        )


@dataclass(frozen=True)
class NextItemTraining:
    epochs: int = 40  # upper bound; early stopping usually ends sooner
    batch_size: int = 32  # windows per step
    lr: float = 3e-3
    weight_decay: float = 0.0
    #: epochs without a better hold-out NDCG@10 before stopping; 0 = no hold-out, train every epoch
    patience: int = 3
    budget_s: float = 300.0
    seed: int = 0


class NextItemDecoder(torch.nn.Module):
    """The transformer body plus the tied catalogue head."""

    def __init__(self, body: torch.nn.Module, n_items: int) -> None:
        super().__init__()
        self.body = body
        self.n_items = n_items
        self.bias = torch.nn.Parameter(torch.zeros(n_items))

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        # right padding needs no attention mask: under the causal mask it never reaches a real position
        return self.body(input_ids=ids)[0]

    def _item_embeddings(self) -> torch.Tensor:
        """The first n_items rows of the body's input embedding table (tied to the catalogue head)."""
        embed_in = self.body.embed_in
        if not isinstance(embed_in, torch.nn.Embedding):  # GPT-NeoX's; says so to the type checker too
            raise TypeError(f"the decoder body's embed_in is a {type(embed_in).__name__}, not an Embedding")
        return embed_in.weight[: self.n_items]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self._item_embeddings().T + self.bias

    def item_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """(n_items, hidden) output embeddings and (n_items,) biases, as float32 arrays."""
        w = self._item_embeddings().detach().float().numpy().copy()
        return w, self.bias.detach().float().numpy().copy()


def build_decoder(n_items: int, shape: DecoderShape, seed: int) -> NextItemDecoder:
    from transformers import AutoModel

    torch.manual_seed(seed)
    return NextItemDecoder(AutoModel.from_config(shape.config(n_items)), n_items)


@dataclass(frozen=True)
class HoldOut:
    """Users whose last train item the model must predict from the items before it (never trained on)."""

    inputs: list[np.ndarray]  # per user: history tokens (BOS + items, or the last max_len items)
    seen: list[np.ndarray]  # per user: items to exclude from the ranking (their earlier train items)
    targets: np.ndarray  # (n,) the held-out item

    @classmethod
    def build(
        cls, sequences: list[np.ndarray], users: np.ndarray, targets: np.ndarray, max_len: int, bos: int
    ) -> HoldOut:
        return cls(
            [history_tokens(sequences[u], max_len, bos) for u in users.tolist()],
            [sequences[u] for u in users.tolist()],
            targets,
        )


def holdout_ndcg(model: NextItemDecoder, holdout: HoldOut, pad: int, k: int = 10, batch_size: int = 256) -> float:
    """NDCG@k of the held-out items, full ranking over the catalogue, earlier items excluded."""
    model.eval()
    gains = np.zeros(len(holdout.targets), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(holdout.targets), batch_size):
            rows = range(start, min(start + batch_size, len(holdout.targets)))
            ids, lengths = pad_right([holdout.inputs[r] for r in rows], pad)
            h = model.hidden(torch.from_numpy(ids))
            last = h[torch.arange(len(lengths)), torch.from_numpy(lengths - 1)]
            scores = model.logits(last).numpy()
            for j, r in enumerate(rows):
                scores[j, holdout.seen[r]] = -np.inf
            target = holdout.targets[start : start + len(lengths)]
            rank = (scores > scores[np.arange(len(lengths)), target][:, None]).sum(axis=1)
            gains[start : start + len(lengths)] = np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)
    return float(gains.mean()) if len(gains) else float("nan")


def train_next_item(
    model: NextItemDecoder,
    windows: list[Window],
    cfg: NextItemTraining,
    pad: int,
    holdout: HoldOut | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> TrainLog:
    """Train in place; deterministic for a seed on one thread count. Stops at `cfg.epochs`, at early stopping
    (then the best epoch's weights are restored) or when `cfg.budget_s` of `clock` has passed, whichever comes
    first; the log says which. The budget is checked after every step and every hold-out evaluation."""
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)  # dropout masks
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    log = TrainLog()
    log.extra.update({"windows": len(windows), "targets_per_epoch": int(sum(len(w.targets) for w in windows))})
    t0 = clock()
    best_score, best_epoch, best_state = -1.0, 0, None
    curve: list[float] = []  # hold-out NDCG@10 after each epoch (a list: kept in stats, not a result row)
    steps_per_epoch = max(1, -(-len(windows) // cfg.batch_size))
    for epoch in range(cfg.epochs):
        model.train()
        order = rng.permutation(len(windows))
        for s in range(steps_per_epoch):
            batch = [windows[i] for i in order[s * cfg.batch_size : (s + 1) * cfg.batch_size]]
            ids, _ = pad_right([w.inputs for w in batch], pad)
            targets, _ = pad_right([w.targets for w in batch], pad, fill_targets=True)
            targets_t = torch.from_numpy(targets)
            real = targets_t >= 0
            # logits only where there is a target: the catalogue head is a large share of the work
            hidden = model.hidden(torch.from_numpy(ids))[real]
            log.optimiser_step(opt, F.cross_entropy(model.logits(hidden), targets_t[real]))
            if clock() - t0 > cfg.budget_s:
                log.stopped_by = "time budget"
                break
        log.epochs = epoch + (s + 1) / steps_per_epoch
        if holdout is not None and cfg.patience > 0 and log.stopped_by != "time budget":
            score = holdout_ndcg(model, holdout, pad)
            curve.append(round(score, 5))
            if score > best_score:
                best_score, best_epoch = score, epoch + 1
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            elif epoch + 1 - best_epoch >= cfg.patience:
                log.stopped_by = "early stopping"
            if clock() - t0 > cfg.budget_s and log.stopped_by != "early stopping" and epoch + 1 < cfg.epochs:
                log.stopped_by = "time budget"
        if log.stopped_by != "epochs":
            break
    if holdout is not None and best_state is not None:  # best_state is only kept when there is a holdout
        model.load_state_dict(best_state)
        log.extra.update(
            {
                "best_epoch": best_epoch,
                "holdout_ndcg_at_10": best_score,
                "holdout_users": len(holdout.targets),
                "holdout_curve": curve,
            }
        )
    log.extra["budget_hit"] = int(log.stopped_by == "time budget")
    log.seconds = clock() - t0
    model.eval()
    return log
