"""llm-generative: a small causal transformer trained here, from scratch, to predict each user's next item.

Tokens are catalogue items. Each user's TRAIN items, in time order (timestamps; ties and timestamp-less data
keep row order, also on random splits), form a sequence; the decoder learns to predict every next item with a
full softmax over the whole catalogue (cheap at a few thousand items). `recommend` reads the user's most
recent `max_len` train items and ranks the whole catalogue by the next-item scores, seen items excluded: the
same full ranking, through the same evaluator, as every recommender.

Default architecture (a SASRec / GPT-style decoder; see next_item_training): GPT-NeoX blocks, 2 layers, 64
wide, 2 heads, MLP 256, rotary positions, dropout 0.2, reading the latest 50 positions; output = tied item
embeddings + item bias. 0.21M parameters on ML-100K (1,682 items). Training defaults (Adam, lr 3e-3, 32
windows a step, at most 40 epochs, patience 3, 300 s budget) were chosen on ML-100K's TRAIN hold-out.

`scoring="last"` (default) ranks by the next-item distribution after the whole history: the natural protocol
when the test item comes after it (`temporal-loo`). `scoring="mean"` averages that distribution over every
history position: "what comes next at some point of this user's timeline", which is where `random-8-1-1`
puts its test items (drawn from the whole history, not after it). Same weights, same single forward per user;
"mean" applies the catalogue head at every position.

Training (CPU, whatever the cell's device: a model this small gains nothing from a GPU, and one training
device keeps a GPU variant's weights identical to the CPU fp32 reference the quality gate compares it
with): Adam, `epochs` at most, early stopping on a hold-out drawn from TRAIN (each user's latest train item,
predicted from the ones before; fit never sees the valid split), and a time budget `train_budget_s`. Same
seed and thread count -> identical weights and figures, unless the budget cuts training short (then
`train_budget_hit` is 1 and a fresh training may stop elsewhere).

The trained weights are stored (bench.recommenders.generative.trained_store) keyed by everything that decides
them, and later fits with the same key, such as the int8 and ONNX cells beside the fp32 one, read them
instead of training again: every variant serves the same weights, so the quality gate measures the runtime
alone. Such a cell's `fit_s` is then loading, not training; `train_s` and the other `train_*` figures are
those of the stored training, `train_reused_from_cache` is 1 and `train_s` joins `prep_cached_s` (one-time
cost made by an earlier process). `reuse_trained=False` always trains.

Serving: the trained transformer is saved and reloaded under the cell's variant through bench.variants
(fp32, fp16/bf16, int8 dynamic, onnx, onnx-int8), which runs the whole forward; the catalogue head is one
float32 matrix product after it, the same for every variant.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.data.dataset import TrainSet
from bench.errors import ConfigError
from bench.recommenders.base import ScoringRecommender
from bench.recommenders.llm.common import (
    RUN_ONLY_PARAMS,
    LLMRecommenderMixin,
    RequestWork,
    Stopwatch,
    check_choice,
    check_fraction,
    check_positive,
    require,
)
from bench.variants.registry import BF16, FP16, FP32, INT8, ONNX, ONNX_INT8

if TYPE_CHECKING:  # imports torch: loaded when a model is trained, not when the registry lists this one
    from bench.recommenders.generative.next_item_training import NextItemDecoder

#: runtimes a model over item ids runs under (distillation learns from texts: not here)
GENERATIVE_VARIANTS = (FP32, FP16, BF16, INT8, ONNX, ONNX_INT8)
MODEL_NAME = "llm-generative"
#: "last": the next-item distribution after the whole history; "mean": its average over every history position
SCORINGS = ("last", "mean")
#: users whose per-position catalogue distributions are held at once under scoring="mean"
MEAN_CHUNK = 32


class TrainedGenerative(LLMRecommenderMixin, ScoringRecommender):
    name = "llm-generative"
    run_context_params = ("variant", "device", "threads", "seed")

    def __init__(
        self,
        variant: str = FP32,
        device: str = "cpu",
        threads: int | None = None,
        hidden: int = 64,
        layers: int = 2,
        heads: int = 2,
        max_len: int = 50,
        dropout: float = 0.2,
        epochs: int = 40,
        train_batch_size: int = 32,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        patience: int = 3,
        train_budget_s: float = 300.0,
        batch_size: int = 256,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        reuse_trained: bool = True,
        scoring: str = "last",
    ) -> None:
        super().__init__()
        self._params = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        if variant not in GENERATIVE_VARIANTS:
            raise ConfigError(
                f"{self.name}: variant {variant!r} is not available: choose one of {', '.join(GENERATIVE_VARIANTS)}"
            )
        from bench.recommenders.generative.next_item_training import DecoderShape, NextItemTraining

        self.variant = variant
        self.device = device
        self.threads = threads
        hidden = check_positive("hidden", hidden, self.name, integer=True)
        heads = check_positive("heads", heads, self.name, integer=True)
        if hidden % heads:
            raise ConfigError(f"{self.name}: hidden={hidden} is not divisible by heads={heads}: pick a width that is")
        max_len = check_positive("max_len", max_len, self.name, integer=True)
        if max_len < 2:
            raise ConfigError(f"{self.name}: max_len={max_len} is too short: use at least 2 positions")
        if not 0.0 <= float(dropout) < 1.0:
            raise ConfigError(f"{self.name}: dropout={dropout!r} is invalid: use a fraction in [0, 1)")
        if not (isinstance(patience, int) and patience >= 0):
            raise ConfigError(
                f"{self.name}: patience={patience!r} is invalid: use a whole number of epochs, "
                "0 to switch early stopping off"
            )
        if weight_decay:
            check_fraction("weight_decay", weight_decay, self.name)
        self.shape = DecoderShape(
            hidden=hidden,
            layers=check_positive("layers", layers, self.name, integer=True),
            heads=heads,
            max_len=max_len,
            dropout=float(dropout),
        )
        self.train_cfg = NextItemTraining(
            epochs=check_positive("epochs", epochs, self.name, integer=True),
            batch_size=check_positive("train_batch_size", train_batch_size, self.name, integer=True),
            lr=check_positive("lr", lr, self.name),
            weight_decay=float(weight_decay),
            patience=patience,
            budget_s=check_positive("train_budget_s", train_budget_s, self.name),
            seed=int(seed),
        )
        self.batch_size = check_positive("batch_size", batch_size, self.name, integer=True)
        self.seed = int(seed)
        self.cache_dir = cache_dir
        self.reuse_trained = bool(reuse_trained)
        self.scoring = check_choice("scoring", scoring, SCORINGS, self.name)
        self.stats: dict[str, Any] = {}
        self.encoder = None  # the trained transformer under the variant (a bench.variants SequenceModel)
        self.item_matrix: np.ndarray | None = None  # (n_items, hidden) float32: the tied output embeddings
        self.item_bias: np.ndarray | None = None  # (n_items,) float32
        self._inputs: list[np.ndarray] = []  # per user: the history tokens the model reads

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, train: TrainSet) -> TrainedGenerative:
        from bench.recommenders.generative import trained_store
        from bench.recommenders.generative.item_sequences import history_tokens, user_sequences
        from bench.variants.device import pin_torch_threads, resolve_threads

        self._remember_seen(train)
        threads = resolve_threads(self.threads)
        pin_torch_threads(threads)
        bos = train.n_items  # the extra token: opens a history, pads a batch
        sequences = user_sequences(train.interactions, train.n_users)
        key = trained_store.training_key(sequences, train.n_items, self._training_settings(), threads)
        target = self._store_root() / f"{MODEL_NAME}-{key}"
        trained = trained_store.load(target) if self.reuse_trained else None
        if trained is None:
            if not self.reuse_trained:
                scratch = Path(tempfile.mkdtemp(prefix="recbench-generative-", dir=self._store_root()))
                # the saved weights live as long as this recommender (a variant may read them again)
                self._cleanup = weakref.finalize(self, shutil.rmtree, str(scratch), True)
                target = scratch / "model"
            model, stats = self._train(sequences, train.n_items)
            item_matrix, item_bias = model.item_matrix()
            trained = trained_store.save(model.body, item_matrix, item_bias, stats, target)
        self.stats = {**trained.stats, "train_reused_from_cache": int(trained.reused)}
        self.item_matrix, self.item_bias = trained.item_matrix, trained.item_bias

        watch = Stopwatch()
        self.encoder = self._serve(trained)
        self._record_encoder(watch())
        if trained.reused:
            # the training an earlier process did is one-time work this cell's fit_s does not hold: it is
            # counted where cached preparation is (bench.cost adds prep_cached_s to fit_s)
            self.stats["prep_cached_s"] = self.stats.get("prep_cached_s", 0.0) + float(trained.stats["train_s"])
        self._inputs = [history_tokens(s, self.shape.max_len, bos) for s in sequences]
        return self

    def _training_settings(self) -> dict[str, Any]:
        """The parameters that decide the weights (not how the model is served)."""
        serving = RUN_ONLY_PARAMS | {"threads", "reuse_trained", "scoring"}
        return {k: v for k, v in self._params.items() if k not in serving}

    def _store_root(self) -> Path:
        from bench.models import default_cache_dir

        root = (Path(self.cache_dir) if self.cache_dir else default_cache_dir()) / "generative"
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _train(self, sequences: list[np.ndarray], n_items: int) -> tuple[NextItemDecoder, dict[str, Any]]:
        from bench.recommenders.generative.item_sequences import hold_out_last, training_windows
        from bench.recommenders.generative.next_item_training import HoldOut, build_decoder, train_next_item

        holdout = None
        train_seqs = sequences
        if self.train_cfg.patience > 0:
            train_seqs, users, targets = hold_out_last(sequences)
            if len(users):
                holdout = HoldOut.build(train_seqs, users, targets, self.shape.max_len, n_items)
        windows = training_windows(train_seqs, self.shape.max_len, n_items)
        if not windows:
            raise ConfigError(
                f"{self.name}: no user has two train items, so there is no next item to learn: "
                "use a dataset with longer histories"
            )
        model = build_decoder(n_items, self.shape, self.seed)
        log = train_next_item(model, windows, self.train_cfg, n_items, holdout)
        stats = {
            "architecture": "gpt-neox decoder",
            "hidden": self.shape.hidden,
            "layers": self.shape.layers,
            "heads": self.shape.heads,
            "max_len": self.shape.max_len,
            "n_parameters": int(sum(p.numel() for p in model.parameters())),
            **log.as_stats("train"),
        }
        return model, stats

    def _serve(self, trained):
        """The stored transformer reloaded under the variant through bench.variants."""
        from bench.models import ResolvedModel, count_parameters
        from bench.variants import build_sequence_model

        resolved = ResolvedModel(
            name=MODEL_NAME,
            path=trained.directory,
            source="trained",
            cost_only=False,
            n_parameters=count_parameters(trained.directory),
            architecture="decoder",
            weights_sha256=trained.weights_sha256,
            notes={"trained_on": "item sequences (TRAIN split)"},
        )
        return build_sequence_model(
            resolved,
            self.variant,
            self.device,
            self.threads,
            max_length=self.shape.max_len,
            cache_dir=Path(self.cache_dir) if self.cache_dir else None,
        )

    # ------------------------------------------------------------------------------------ per request
    def _forward(self, users: np.ndarray):
        """Yield (rows, hidden (B, L, d), lengths) per length-sorted batch of `users` (less padding): the
        per-request transformer work. `rows` index into `users`."""
        from bench.recommenders.generative.item_sequences import pad_right

        require(self.encoder is not None, f"{self.name} is not fitted: call fit(train) before recommend")
        inputs = [self._inputs[u] for u in np.asarray(users, dtype=np.int64).tolist()]
        lengths = np.fromiter((len(x) for x in inputs), dtype=np.int64, count=len(inputs))
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(inputs), self.batch_size):
            rows = order[start : start + self.batch_size]
            ids, lens = pad_right([inputs[r] for r in rows], self.n_items)
            mask = (np.arange(ids.shape[1])[None, :] < lens[:, None]).astype(np.int64)
            yield rows, self.encoder.hidden_states(ids, mask), lens

    def _head(self) -> tuple[np.ndarray, np.ndarray]:
        """(item matrix, item bias) of the catalogue head, or the error saying fit comes first."""
        if self.item_matrix is None or self.item_bias is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(train) before recommend")
        return self.item_matrix, self.item_bias

    def user_vectors(self, users: np.ndarray) -> np.ndarray:
        """(n, hidden): the last layer at each user's last history position."""
        out = np.empty((len(users), self.encoder.dim if self.encoder else 0), dtype=np.float32)
        for rows, hidden, lens in self._forward(users):
            out[rows] = hidden[np.arange(len(rows)), lens - 1]
        return out

    def score(self, users: np.ndarray) -> np.ndarray:
        item_matrix, item_bias = self._head()
        if self.scoring == "last":
            return self.user_vectors(users) @ item_matrix.T + item_bias
        out = np.empty((len(users), item_matrix.shape[0]), dtype=np.float32)
        for rows, hidden, lens in self._forward(users):
            real = (np.arange(hidden.shape[1])[None, :] < lens[:, None]).astype(np.float32)[:, :, None]
            for a in range(0, len(rows), MEAN_CHUNK):  # (chunk, L, n_items) at a time bounds the memory
                probs = _softmax(hidden[a : a + MEAN_CHUNK] @ item_matrix.T + item_bias)
                mean = (probs * real[a : a + MEAN_CHUNK]).sum(axis=1) / lens[a : a + MEAN_CHUNK, None]
                out[rows[a : a + MEAN_CHUNK]] = np.log(mean)
        return out

    def history_lengths(self, users: np.ndarray) -> np.ndarray:
        """Tokens each user's request feeds the transformer."""
        return np.fromiter(
            (len(self._inputs[u]) for u in np.asarray(users, dtype=np.int64).tolist()), dtype=np.int64, count=len(users)
        )

    def request_work(self, users: np.ndarray) -> RequestWork:
        users = np.asarray(users, dtype=np.int64)
        n_items, d = self._head()[0].shape
        lengths = self.history_lengths(users)
        positions = len(users) if self.scoring == "last" else int(lengths.sum())  # head applications
        return RequestWork(
            n_requests=len(users),
            encoder_config=self.encoder_config(),
            token_counts=lengths,
            scoring_macs=int(positions * n_items * d),
            kind="sequences",
            notes={"scoring": f"{self.scoring}: hidden . item embeddings ({n_items} x {d}) + bias"},
        )

    def footprint(self) -> int:
        if self.encoder is None:
            return 0
        item_matrix, item_bias = self._head()
        return int(self.encoder.footprint()) + int(item_matrix.nbytes) + int(item_bias.nbytes)

    def __repr__(self) -> str:
        s = self.shape
        return f"TrainedGenerative(variant={self.variant!r}, hidden={s.hidden}, layers={s.layers}, max_len={s.max_len})"


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)
