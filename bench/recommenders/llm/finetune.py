"""Contrastive fine-tuning of the transformer itself (the two-tower's `finetune` mode).

The torch model is loaded from the same resolved, checksum-verified directory the variants use, trained
with InfoNCE over in-batch negatives on (profile, held-out train item) pairs, then saved with its
tokenizer to a directory that `build_encoder` loads like any local model: so `int8`, `onnx`,
`onnx-int8` and `distilled` variants apply to the trained weights, not the pretrained ones.

CPU budget: by default only the top `train_layers` transformer layers learn (embeddings and lower layers
frozen), which roughly halves the backward cost; training stops at `max_steps` or `budget_s`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.errors import ConfigError
from bench.models import ResolvedModel, save_model
from bench.recommenders.llm.common import info_nce, positives_mask
from bench.recommenders.llm.projection import Projection, TrainLog


@dataclass(frozen=True)
class FinetuneConfig:
    max_steps: int = 150
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float = 1e-3
    temperature: float = 0.1
    #: subtract log(item sampling frequency) from in-batch logits (Yi et al. 2019) so popular items are not
    #: punished for appearing often as negatives
    logq: bool = True
    #: transformer layers that learn, counted from the top; None = every parameter
    train_layers: int | None = 2
    budget_s: float = 120.0
    seed: int = 0
    max_length: int = 128
    #: output dimension of jointly trained projection heads; None = no heads (use the pooled embedding)
    dim: int | None = None


def _layer_stack(module):
    """BERT-style `encoder.layer` list, or GPT-2-style `h`; None when the architecture is unknown."""
    enc = getattr(module, "encoder", None)
    if enc is not None and hasattr(enc, "layer"):
        return enc.layer
    return getattr(module, "h", None)


def _freeze_lower(module, train_layers: int | None) -> int:
    """Freeze everything but the top `train_layers` layers; returns the number of trainable parameters."""
    if train_layers is None:
        return int(sum(p.numel() for p in module.parameters()))
    layers = _layer_stack(module)
    if layers is None:
        return int(sum(p.numel() for p in module.parameters()))  # unknown layout: train everything
    for p in module.parameters():
        p.requires_grad_(False)
    for layer in list(layers)[-train_layers:] if train_layers > 0 else []:
        for p in layer.parameters():
            p.requires_grad_(True)
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


def finetune_contrastive(
    resolved: ResolvedModel,
    profiles: Sequence[str],
    pair_rows: np.ndarray,
    pair_users: np.ndarray,
    pair_items: np.ndarray,
    item_texts: Sequence[str],
    seen,
    out_dir: Path,
    cfg: FinetuneConfig,
    device: str = "cpu",
) -> tuple[ResolvedModel, Projection | None, TrainLog]:
    """Fine-tune, save to `out_dir`, and return the saved model (resolved like a user's local directory)."""
    import torch
    import torch.nn.functional as F

    from bench.variants.eager import load_module, model_input_names
    from bench.variants.runtime import load_tokenizer, mean_pool_torch

    if len(pair_rows) == 0:
        raise ConfigError("no training pairs: every user has a single train interaction; use mode='zero-shot'")
    if cfg.train_layers is not None and cfg.train_layers < 0:
        raise ConfigError(f"train_layers={cfg.train_layers} must be >= 0 or None (all)")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    module = load_module(resolved, "float32", device)
    tokenizer = load_tokenizer(resolved.path)
    names = model_input_names(resolved)
    trainable = _freeze_lower(module, cfg.train_layers)
    module.train()  # dropout on: the usual regulariser for contrastive sentence-embedding training
    hidden = int(module.config.hidden_size)
    heads = None
    params = [{"params": [p for p in module.parameters() if p.requires_grad], "lr": cfg.lr}]
    if cfg.dim is not None:
        # seeded random orthogonal start: approximately preserves cosines (Johnson-Lindenstrauss) until trained
        q, _ = np.linalg.qr(rng.standard_normal((hidden, hidden)))
        init = torch.from_numpy(q[:, : cfg.dim].astype(np.float32))
        heads = (torch.nn.Parameter(init.clone()), torch.nn.Parameter(init.clone()))
        params.append({"params": list(heads), "lr": cfg.head_lr})
    opt = torch.optim.AdamW(params, weight_decay=0.01)

    def embed(texts: list[str]):
        batch = tokenizer(texts, padding=True, truncation=True, max_length=cfg.max_length, return_tensors="pt")
        inputs = {k: v.to(device) for k, v in batch.items() if k in names}
        return mean_pool_torch(module(**inputs)[0], inputs["attention_mask"])

    log = TrainLog(stopped_by="steps")
    n = len(pair_rows)
    log_q = None
    if cfg.logq:
        freq = np.bincount(pair_items, minlength=len(item_texts)).astype(np.float64)
        log_q = torch.from_numpy(np.log(np.maximum(freq, 1.0) / n).astype(np.float32)).to(device)
    perm = rng.permutation(n)
    cursor = 0
    t0 = time.perf_counter()
    while log.steps < cfg.max_steps:
        if cursor + cfg.batch_size > n:
            perm, cursor = rng.permutation(n), 0
        idx = perm[cursor : cursor + cfg.batch_size]
        cursor += cfg.batch_size
        u = embed([profiles[r] for r in pair_rows[idx]])
        v = embed([item_texts[i] for i in pair_items[idx]])
        if heads is not None:
            u, v = u @ heads[0], v @ heads[1]
        u, v = F.normalize(u, dim=-1), F.normalize(v, dim=-1)
        mask = torch.from_numpy(positives_mask(seen, pair_users[idx], pair_items[idx])).to(u.device)
        offset = log_q[torch.from_numpy(pair_items[idx]).to(device)] if log_q is not None else None
        log.optimiser_step(opt, info_nce(u, v, cfg.temperature, mask, column_offset=offset))
        if time.perf_counter() - t0 > cfg.budget_s and log.steps < cfg.max_steps:
            log.stopped_by = "time budget"
            break
    log.seconds = time.perf_counter() - t0
    log.epochs = log.steps * cfg.batch_size / n
    log.extra = {"trainable_params": trainable, "pairs": n}

    module.eval()
    saved = save_model(
        module,
        resolved,
        Path(out_dir),
        name=f"{resolved.name}-finetuned",
        notes={
            "finetuned_from": resolved.name,
            "base_sha256": resolved.weights_sha256,
            "config": asdict(cfg),
            "steps": log.steps,
            "stopped_by": log.stopped_by,
        },
    )
    projection = None
    if heads is not None:
        zeros = np.zeros(hidden, dtype=np.float32)
        projection = Projection(zeros, heads[0].detach().cpu().numpy().copy(), heads[1].detach().cpu().numpy().copy())
    return saved, projection, log
