"""llm-two-tower: a user tower reads the profile text, an item tower reads each item's text; cosine top-k.

Offline (fit): the item tower encodes every item once -> the item matrix (its seconds and bytes are in
`stats`, apart from per-request cost). Online (recommend): the user tower encodes the requested users'
profiles, vectorised over the batch, and one matrix product scores the catalogue. Nothing is cached across
calls, so timing recommend() times the real per-request work.

Modes
- zero-shot: the pretrained encoder as is. `dim` reduces both towers with the item embeddings' PCA.
- projection: the transformer stays frozen; two linear maps (user, item) learn with InfoNCE on
  (profile, held-out train item) pairs, softmax over the whole catalogue by default (exact for full
  ranking and cheap while items are frozen; `negatives="in-batch"` uses the batch with the logQ
  correction). `dim` sets their output size (default: the encoder's).
- finetune: the transformer's top layers learn with in-batch-negative InfoNCE (logQ-corrected) under a time
  budget; the weights are saved and the requested variant is built from them. Then, by default
  (`finetune_project`), the projection is trained on the fine-tuned embeddings as in `projection` mode, so
  finetune vs projection shows what training the transformer adds; without it `dim` adds heads trained
  jointly with the transformer.
Training pairs come from TRAIN only: per user a seeded share of train items is held out as targets and
the profile is built from the rest; valid and test are never seen.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.dataset import TrainSet
from bench.recommenders.base import ScoringRecommender
from bench.recommenders.llm.common import (
    LLMRecommenderMixin,
    RequestWork,
    Stopwatch,
    check_choice,
    check_fraction,
    check_positive,
    make_encoder,
    require,
)
from bench.recommenders.llm.finetune import FinetuneConfig, finetune_contrastive
from bench.recommenders.llm.profile import (
    DEFAULT_MIN_RATING,
    DEFAULT_PROFILE_LEN,
    ProfileConfig,
    build_profiles,
    holdout_split,
    item_texts,
)
from bench.recommenders.llm.projection import (
    Projection,
    ProjectionTraining,
    identity_projection,
    pca_projection,
    train_projection,
)
from bench.variants.registry import FP32

MODES = ("zero-shot", "projection", "finetune")


class TwoTower(LLMRecommenderMixin, ScoringRecommender):
    name = "llm-two-tower"
    run_context_params = ("variant", "device", "threads", "seed")

    def __init__(
        self,
        model: Any = "minilm",
        variant: str = FP32,
        device: str = "cpu",
        threads: int | None = None,
        mode: str = "zero-shot",
        dim: int | None = None,
        profile_len: int = DEFAULT_PROFILE_LEN,
        min_rating: float = DEFAULT_MIN_RATING,
        item_fields: str = "describe",
        batch_size: int = 64,
        max_length: int = 128,
        holdout_frac: float = 0.2,
        train_budget_s: float = 120.0,
        epochs: int = 10,
        train_batch_size: int = 512,
        lr: float = 1e-3,
        temperature: float = 0.2,
        negatives: str = "catalogue",
        logq: bool = True,
        finetune_steps: int = 150,
        finetune_batch_size: int = 32,
        finetune_lr: float = 5e-5,
        finetune_temperature: float = 0.1,
        finetune_layers: int | None = 2,
        finetune_project: bool = True,
        seed: int = 0,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self._params = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.model = model
        self.variant = variant
        self.device = device
        self.threads = threads
        self.mode = check_choice("mode", mode, MODES, self.name)
        if dim is not None:
            dim = check_positive("dim", dim, self.name, integer=True)
        self.dim = dim
        self.profile = ProfileConfig(
            check_positive("profile_len", profile_len, self.name, integer=True), float(min_rating)
        )
        self.item_fields = check_choice("item_fields", item_fields, ("describe", "title"), self.name)
        self.batch_size = check_positive("batch_size", batch_size, self.name, integer=True)
        self.max_length = check_positive("max_length", max_length, self.name, integer=True)
        self.holdout_frac = check_fraction("holdout_frac", holdout_frac, self.name)
        self.train_budget_s = check_positive("train_budget_s", train_budget_s, self.name)
        self.projection_cfg = ProjectionTraining(
            epochs=check_positive("epochs", epochs, self.name, integer=True),
            batch_size=check_positive("train_batch_size", train_batch_size, self.name, integer=True),
            lr=check_positive("lr", lr, self.name),
            temperature=check_positive("temperature", temperature, self.name),
            negatives=check_choice("negatives", negatives, ("in-batch", "catalogue"), self.name),
            logq=bool(logq),
            budget_s=self.train_budget_s,
            seed=seed,
        )
        self.finetune_cfg = FinetuneConfig(
            max_steps=check_positive("finetune_steps", finetune_steps, self.name, integer=True),
            batch_size=check_positive("finetune_batch_size", finetune_batch_size, self.name, integer=True),
            lr=check_positive("finetune_lr", finetune_lr, self.name),
            temperature=check_positive("finetune_temperature", finetune_temperature, self.name),
            logq=bool(logq),
            train_layers=finetune_layers,
            budget_s=self.train_budget_s,
            seed=seed,
            max_length=self.max_length,
            dim=None if finetune_project else dim,
        )
        self.finetune_project = bool(finetune_project)
        self.seed = int(seed)
        self.cache_dir = cache_dir
        self.stats: dict[str, Any] = {}
        self.encoder = None
        self.item_matrix: np.ndarray | None = None  # (n_items, d) float32, rows L2-normalised
        self.projection: Projection | None = None
        self._profiles: list[str] = []
        self._texts: list[str] = []  # every item's text, as the item tower reads it

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, train: TrainSet) -> TwoTower:
        self._remember_seen(train)
        self.stats = {"mode": self.mode, "dim": self.dim, "profile_len": self.profile.max_titles}
        self._profiles = build_profiles(train.interactions, train.item_text, train.n_users, self.profile)
        texts = item_texts(train.item_text, self.item_fields)
        source: Any = self.model
        ft_projection = None
        pairs: dict[str, Any] = {}  # filled for the modes that train (projection, finetune), which alone read it
        if self.mode in ("projection", "finetune"):
            pairs = self._training_pairs(train)
        if self.mode == "finetune":
            source, ft_projection = self._finetune(train, texts, pairs)
        watch = Stopwatch()
        self.encoder = make_encoder(
            source,
            self.variant,
            self.device,
            self.threads,
            self.max_length,
            self.cache_dir,
            distill_texts=texts + [p for p in self._profiles if p],
        )
        self._record_encoder(watch())

        # only the items that exist at fit time (a replay's catalogue so far); the rest stay zero until add_items
        known = np.arange(train.n_items) if train.known_items is None else np.asarray(train.known_items, np.int64)
        known_texts = [texts[i] for i in known.tolist()]
        watch = Stopwatch()
        item_emb = np.zeros((len(texts), int(self.encoder.dim)), dtype=np.float32)
        if known_texts:
            item_emb[known] = self.encoder.encode(known_texts, self.batch_size)
        self.stats["encode_items_s"] = watch()
        self.stats["n_items_encoded"] = len(known_texts)
        self.stats["item_tokens_mean"] = float(self.encoder.token_counts(known_texts).mean()) if known_texts else 0.0
        self._texts = texts

        if self.mode == "zero-shot":
            self.projection = pca_projection(item_emb, self.dim) if self.dim else None
        elif self.mode == "projection" or self.finetune_project:
            self.projection = self._train_projection(item_emb, pairs)
        else:
            self.projection = ft_projection
        self.item_matrix = np.ascontiguousarray(
            self.projection.items(item_emb) if self.projection is not None else item_emb, dtype=np.float32
        )
        unknown = np.ones(len(texts), dtype=bool)
        unknown[known] = False
        self.item_matrix[unknown] = 0.0  # not in the catalogue yet: no text has been read for them
        self.stats["item_matrix_bytes"] = int(self.item_matrix.nbytes)
        self.stats["item_matrix_shape"] = list(self.item_matrix.shape)
        return self

    def _training_pairs(self, train: TrainSet) -> dict[str, Any]:
        """(profile from part A, target from part B) for every held-out train interaction."""
        part_a, part_b = holdout_split(train.interactions, self.holdout_frac, self.seed)
        profiles_a = build_profiles(part_a, train.item_text, train.n_users, self.profile)
        users = np.unique(part_b.users).astype(np.int64)
        row_of = np.full(train.n_users, -1, dtype=np.int64)
        row_of[users] = np.arange(len(users))
        self.stats["train_pairs"] = len(part_b)
        return {
            "profiles": [profiles_a[u] for u in users],
            "rows": row_of[part_b.users.astype(np.int64)],
            "users": part_b.users.astype(np.int64),
            "items": part_b.items.astype(np.int64),
        }

    def _train_projection(self, item_emb: np.ndarray, pairs: dict[str, Any]) -> Projection:
        watch = Stopwatch()
        profile_emb = self.encoder.encode(pairs["profiles"], self.batch_size)
        self.stats["encode_train_profiles_s"] = watch()
        init = pca_projection(item_emb, self.dim) if self.dim else identity_projection(item_emb)
        projection, log = train_projection(
            profile_emb, pairs["rows"], pairs["users"], pairs["items"], item_emb, self._seen, init, self.projection_cfg
        )
        before = self.stats.get("train_s", 0.0)  # finetune mode: the transformer's training came first
        self.stats.update(log.as_stats("projection" if self.mode == "finetune" else "train"))
        self.stats["train_s"] = before + self.stats["encode_train_profiles_s"] + log.seconds
        return projection

    def _finetune(self, train: TrainSet, texts: list[str], pairs: dict[str, Any]):
        from bench.models import resolve_model
        from bench.variants.device import pin_torch_threads, resolve_device, resolve_threads

        device = resolve_device(self.device)
        pin_torch_threads(resolve_threads(self.threads))
        resolved = resolve_model(self.model, cache_dir=Path(self.cache_dir) if self.cache_dir else None)
        parent = Path(self.cache_dir) / "finetuned" if self.cache_dir else None
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        out_dir = Path(tempfile.mkdtemp(prefix="recbench-finetuned-", dir=parent))
        # the saved weights live as long as this recommender (variants may reload them lazily)
        self._ft_cleanup = weakref.finalize(self, shutil.rmtree, str(out_dir), True)
        saved, projection, log = finetune_contrastive(
            resolved,
            pairs["profiles"],
            pairs["rows"],
            pairs["users"],
            pairs["items"],
            texts,
            self._seen,
            out_dir,
            self.finetune_cfg,
            device=device,
        )
        self.stats.update(log.as_stats("train"))
        self.stats["train_s"] = log.seconds
        self.stats["finetuned_dir"] = str(out_dir)
        return saved, projection

    # ------------------------------------------------------------------------------- online updates
    def add_items(self, items: np.ndarray) -> None:
        """Encode `items` (new in the catalogue) with the fitted towers into the item matrix; every other row
        is reused as it is."""
        require(self.encoder is not None, f"{self.name} is not fitted: call fit(train) before add_items")
        items = np.asarray(items, dtype=np.int64)
        if items.size:
            emb = self.encoder.encode([self._texts[i] for i in items.tolist()], self.batch_size)
            self._fitted_items()[items] = self.projection.items(emb) if self.projection is not None else emb

    def update_profiles(self, train: TrainSet) -> None:
        """Rebuild the profile texts (and the seen items) from `train`, a longer history than fit's; the user
        tower reads the new texts from the next encode_users call on."""
        self._remember_seen(train)
        self._profiles = build_profiles(train.interactions, train.item_text, train.n_users, self.profile)

    # ------------------------------------------------------------------------------------ per request
    def encode_users(self, users: np.ndarray) -> np.ndarray:
        """The user tower: profile texts of `users` -> (n, d) L2-normalised vectors (the per-request work)."""
        require(self.encoder is not None, f"{self.name} is not fitted: call fit(train) before recommend")
        users = np.asarray(users, dtype=np.int64)
        vecs = self.encoder.encode(self.profile_texts(users), self.batch_size)
        return self.projection.users(vecs) if self.projection is not None else vecs

    def _fitted_items(self) -> np.ndarray:
        """The item matrix, or the error saying fit comes first."""
        if self.item_matrix is None:
            raise RuntimeError(f"{self.name} is not fitted: call fit(train) first")
        return self.item_matrix

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.encode_users(users) @ self._fitted_items().T

    def profile_texts(self, users: np.ndarray) -> list[str]:
        """The texts the user tower reads for `users` (built from train interactions in fit)."""
        return [self._profiles[u] for u in np.asarray(users, dtype=np.int64).tolist()]

    def request_work(self, users: np.ndarray) -> RequestWork:
        users = np.asarray(users, dtype=np.int64)
        counts = self.encoder.token_counts(self.profile_texts(users))
        d_enc = int(self.encoder.dim)
        n_items, d = self._fitted_items().shape
        proj_macs = d_enc * d if self.projection is not None else 0
        return RequestWork(
            n_requests=len(users),
            encoder_config=self.encoder_config(),
            token_counts=counts,
            scoring_macs=int(len(users) * (n_items * d + proj_macs)),
            kind="texts",
            notes={"scoring": f"user vector . item matrix ({n_items} x {d})"},
        )

    def footprint(self) -> int:
        if self.encoder is None:
            return 0
        extra = self.projection.nbytes() if self.projection is not None else 0
        return int(self.encoder.footprint()) + int(self._fitted_items().nbytes) + extra

    def __repr__(self) -> str:
        return f"TwoTower(model={self.model!r}, variant={self.variant!r}, mode={self.mode!r}, dim={self.dim})"
