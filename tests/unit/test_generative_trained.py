"""llm-generative: a next-item decoder trained on tiny synthetic sequences, served through bench.variants."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from bench.data.dataset import Interactions, TrainSet  # noqa: E402
from bench.errors import ConfigError  # noqa: E402
from bench.measure.flops import encoder_config_flops, request_flops  # noqa: E402
from bench.recommenders import registry  # noqa: E402
from bench.recommenders.generative.item_sequences import history_tokens, hold_out_last, training_windows, user_sequences  # noqa: E402
from bench.recommenders.generative.next_item_training import (  # noqa: E402
    DecoderShape,
    NextItemTraining,
    build_decoder,
    train_next_item,
)
from bench.recommenders.generative.trained import TrainedGenerative  # noqa: E402
from tests.support.llm_data import toy_item_text  # noqa: E402

N_ITEMS, N_USERS, RUN = 20, 60, 6
#: a tiny decoder that learns the cycle in about a second on one thread
TINY = {
    "hidden": 32,
    "layers": 1,
    "heads": 2,
    "max_len": 8,
    "dropout": 0.0,
    "epochs": 40,
    "train_batch_size": 16,
    "lr": 1e-2,
    "patience": 0,
    "threads": 1,
    "seed": 0,
}


def cyclic_train(n_users: int = N_USERS, n_items: int = N_ITEMS, run: int = RUN, seed: int = 0) -> TrainSet:
    """User u watched `run` consecutive items of a cycle over the catalogue, starting at u mod n_items, so the
    true next item is the one after the last. Rows are shuffled: only the timestamps give the order."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), run)
    steps = np.tile(np.arange(run), n_users)
    items = (users % n_items + steps) % n_items
    stamps = 1_000_000 + users * 100 + steps * 7
    perm = rng.permutation(len(users))
    inter = Interactions(
        users[perm].astype(np.int32),
        items[perm].astype(np.int32),
        np.ones(len(users), dtype=np.float32),
        stamps[perm].astype(np.int64),
    )
    return TrainSet(inter, n_users, n_items, toy_item_text(n_items))


def true_next(users: np.ndarray) -> np.ndarray:
    return (users % N_ITEMS + RUN) % N_ITEMS


@pytest.fixture(scope="module")
def train() -> TrainSet:
    return cyclic_train()


@pytest.fixture(scope="module")
def fitted(train, model_cache_dir) -> TrainedGenerative:
    return TrainedGenerative(**TINY, cache_dir=model_cache_dir).fit(train)


# ------------------------------------------------------------------------------------------- sequences


def test_sequences_follow_timestamps_with_ties_in_row_order():
    inter = Interactions(
        np.array([1, 0, 0, 0, 1], dtype=np.int32),
        np.array([7, 3, 1, 2, 5], dtype=np.int32),
        np.ones(5, dtype=np.float32),
        np.array([5, 30, 10, 10, 1], dtype=np.int64),
    )
    seqs = user_sequences(inter, 3)
    assert [s.tolist() for s in seqs] == [[1, 2, 3], [5, 7], []]


def test_every_item_is_a_target_once_and_windows_fit_max_len():
    seqs = [np.arange(100, 111), np.array([5]), np.array([], dtype=np.int64)]
    windows = training_windows(seqs, max_len=4, bos=999)
    targets = np.concatenate([w.targets for w in windows])
    assert sorted(targets.tolist()) == sorted(np.concatenate(seqs).tolist())
    assert all(1 <= len(w.inputs) <= 4 and len(w.inputs) == len(w.targets) for w in windows)
    # each input is the item before its target (BOS before a sequence's first item)
    for w in windows:
        assert w.inputs[1:].tolist() == w.targets[:-1].tolist()
    assert windows[0].targets[-1] == 110 and windows[0].inputs.tolist() == [106, 107, 108, 109]
    assert any(w.inputs[0] == 999 and w.targets[0] == 100 for w in windows)
    # what the model reads at request time is the last max_len tokens, as in training
    assert history_tokens(seqs[0], 4, 999).tolist() == [107, 108, 109, 110]
    assert history_tokens(seqs[1], 4, 999).tolist() == [999, 5]
    assert history_tokens(seqs[2], 4, 999).tolist() == [999]


def test_hold_out_takes_the_latest_item_of_long_enough_sequences():
    kept, users, targets = hold_out_last([np.array([1, 2, 3]), np.array([4, 5])], min_len=3)
    assert [k.tolist() for k in kept] == [[1, 2], [4, 5]]
    assert users.tolist() == [0] and targets.tolist() == [3]


# ------------------------------------------------------------------------------------------- behaviour


def test_learns_the_cycle_and_ranks_the_true_next_item_first(fitted):
    users = np.arange(N_USERS)
    top = fitted.recommend(users, 3)
    hit1 = float(np.mean(top.items[:, 0] == true_next(users)))
    # popularity cannot do this: every item is equally popular here (chance is 1 in 14 unseen items)
    assert hit1 >= 0.95, hit1
    assert fitted.stats["train_steps"] > 0 and fitted.stats["train_stopped_by"] == "epochs"


def test_recommendations_exclude_seen_items_or_the_given_exclusion(fitted, train):
    users = np.arange(N_USERS)
    k = N_ITEMS - RUN
    top = fitted.recommend(users, k)
    seen = train.matrix()
    assert not np.any(np.asarray(seen[np.repeat(users, k), top.items.ravel()]))
    assert np.all(np.diff(top.scores, axis=1) <= 0)
    # an explicit exclusion set (train + valid at test time) replaces the train items
    blocked = seen + sp.csr_matrix((np.ones(N_USERS), (users, true_next(users))), shape=seen.shape)
    again = fitted.recommend(users, 3, exclude=blocked.tocsr())
    assert not np.any(again.items == true_next(users)[:, None])


def test_same_seed_gives_identical_scores_and_another_seed_does_not(train, model_cache_dir, fitted):
    users = np.arange(N_USERS)
    params = {**TINY, "epochs": 3, "cache_dir": model_cache_dir, "reuse_trained": False}  # train each time
    a = TrainedGenerative(**params).fit(train).score(users)
    b = TrainedGenerative(**params).fit(train).score(users)
    np.testing.assert_array_equal(a, b)
    c = TrainedGenerative(**{**params, "seed": 1}).fit(train).score(users)
    assert not np.allclose(a, c, atol=1e-3)


def test_a_second_fit_reads_the_stored_training_and_a_corrupt_one_is_trained_again(train, tmp_path):
    params = {**TINY, "epochs": 3, "cache_dir": tmp_path}
    first = TrainedGenerative(**params).fit(train)
    second = TrainedGenerative(**params, variant="int8").fit(train)
    assert first.stats["train_reused_from_cache"] == 0 and second.stats["train_reused_from_cache"] == 1
    for key in ("train_steps", "train_s", "train_loss_last"):  # the figures of the one training
        assert second.stats[key] == first.stats[key]
    # the reused training is one-time cost the second cell's fit did not pay: priced as cached preparation
    assert second.stats["prep_cached_s"] >= first.stats["train_s"] > first.stats["prep_cached_s"]
    np.testing.assert_array_equal(second.item_matrix, first.item_matrix)
    expected = first.score(np.arange(5))  # before the file under first's memory-mapped weights is damaged
    [stored] = [d for d in (tmp_path / "generative").iterdir() if d.name.startswith("llm-generative-")]
    weights = stored / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + bytes(8))  # a flipped tail: the checksum no longer matches
    third = TrainedGenerative(**params).fit(train)
    assert third.stats["train_reused_from_cache"] == 0
    np.testing.assert_array_equal(third.score(np.arange(5)), expected)
    other_seed = TrainedGenerative(**{**params, "seed": 1}).fit(train)
    assert other_seed.stats["train_reused_from_cache"] == 0


@pytest.mark.parametrize("variant", ["bf16", "int8", "onnx", "onnx-int8"])
def test_variants_rank_like_fp32_from_the_same_weights(train, fitted, model_cache_dir, variant):
    users = np.arange(N_USERS)
    other = TrainedGenerative(**TINY, variant=variant, cache_dir=model_cache_dir).fit(train)
    assert other.encoder.variant == variant and other.gate_key() == fitted.gate_key()
    np.testing.assert_array_equal(other.item_matrix, fitted.item_matrix)  # training is the same in every variant
    ref, got = fitted.score(users), other.score(users)
    scale = np.abs(ref).max()
    tolerance = 1e-4 if variant == "onnx" else 0.1  # exact runtime vs reduced precision
    assert np.abs(got - ref).max() <= tolerance * scale, (variant, np.abs(got - ref).max(), scale)
    assert np.mean(other.recommend(users, 1).items[:, 0] == fitted.recommend(users, 1).items[:, 0]) >= 0.95


@pytest.mark.gpu
@pytest.mark.parametrize("variant", ["fp32", "fp16"])
def test_runs_on_cuda_and_ranks_like_cpu_fp32(train, fitted, model_cache_dir, variant):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA on this machine")
    users = np.arange(N_USERS)
    other = TrainedGenerative(**TINY, variant=variant, device="cuda", cache_dir=model_cache_dir).fit(train)
    assert other.encoder.device == "cuda"
    assert np.mean(other.recommend(users, 1).items[:, 0] == fitted.recommend(users, 1).items[:, 0]) >= 0.95


# ------------------------------------------------------------------------------------------- training loop


class StepClock:
    """A clock that advances one second each time it is read: the loop's budget becomes a count of reads."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        value = self.now
        self.now += 1.0
        return value


def _windows(train: TrainSet, max_len: int = 8):
    return training_windows(user_sequences(train.interactions, train.n_users), max_len, train.n_items)


def test_time_budget_stops_the_loop_after_the_step_that_crosses_it(train):
    model = build_decoder(N_ITEMS, DecoderShape(hidden=16, layers=1, heads=2, max_len=8, dropout=0.0), seed=0)
    cfg = NextItemTraining(epochs=100, batch_size=8, patience=0, budget_s=5.5, seed=0)
    log = train_next_item(model, _windows(train), cfg, pad=N_ITEMS, clock=StepClock())
    # the clock is read once at the start and once after each step: steps 1..5 end at 1..5 s, step 6 at 6 s > 5.5
    assert log.steps == 6 and log.stopped_by == "time budget" and log.extra["budget_hit"] == 1
    assert log.epochs < 1.0  # 60 windows make 8 steps an epoch: the budget cut the first one short


def test_early_stopping_keeps_the_best_epochs_weights(train, monkeypatch):
    from bench.recommenders.generative import next_item_training as nit
    from bench.recommenders.generative.item_sequences import hold_out_last

    scores = iter([0.2, 0.5, 0.4, 0.3, 0.9])
    snapshots = []

    def fake_ndcg(model, holdout, pad, k=10, batch_size=256):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scores)

    monkeypatch.setattr(nit, "holdout_ndcg", fake_ndcg)
    seqs = user_sequences(train.interactions, train.n_users)
    kept, users, targets = hold_out_last(seqs)
    holdout = nit.HoldOut.build(kept, users, targets, 8, N_ITEMS)
    model = build_decoder(N_ITEMS, DecoderShape(hidden=16, layers=1, heads=2, max_len=8, dropout=0.0), seed=0)
    cfg = NextItemTraining(epochs=10, batch_size=16, patience=2, budget_s=1e9, seed=0)
    log = train_next_item(model, training_windows(kept, 8, N_ITEMS), cfg, pad=N_ITEMS, holdout=holdout)
    assert log.stopped_by == "early stopping" and log.epochs == 4 and log.extra["best_epoch"] == 2
    assert log.extra["holdout_ndcg_at_10"] == 0.5 and log.extra["holdout_curve"] == [0.2, 0.5, 0.4, 0.3]
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, snapshots[1][name])


def test_fit_holds_out_each_users_latest_train_item_for_early_stopping(train, model_cache_dir):
    rec = TrainedGenerative(**{**TINY, "epochs": 2, "patience": 3}, cache_dir=model_cache_dir).fit(train)
    assert rec.stats["train_holdout_users"] == N_USERS
    assert rec.stats["train_targets_per_epoch"] == N_USERS * (RUN - 1)  # the held-out items are never targets
    assert 0.0 <= rec.stats["train_holdout_ndcg_at_10"] <= 1.0 and rec.stats["train_best_epoch"] in (1, 2)


# ------------------------------------------------------------------------------------------- work, registry, cell


def test_flops_count_the_decoder_forward_over_the_history_and_the_catalogue_head(fitted):
    users = np.array([0, 1])
    config = fitted.request_work(users).encoder_config
    assert (config["layers"], config["hidden"], config["intermediate"]) == (1, 32, 128)
    lengths = fitted.history_lengths(users)
    assert lengths.tolist() == [RUN + 1, RUN + 1]  # BOS + the history
    per_user = encoder_config_flops(config, lengths) / 2 + 2 * N_ITEMS * 32
    assert request_flops(fitted.request_work(users)) == pytest.approx(per_user)
    assert fitted.footprint() > fitted.item_matrix.nbytes


def test_mean_scoring_averages_the_next_item_distribution_over_every_history_position(train, fitted, model_cache_dir):
    mean = TrainedGenerative(**TINY, scoring="mean", cache_dir=model_cache_dir).fit(train)
    assert mean.stats["train_reused_from_cache"] == 1  # how it scores does not change the weights
    assert mean.gate_key() != fitted.gate_key()  # ... but it changes the ranking
    user = np.array([7])
    tokens = mean._inputs[7]
    hidden = mean.encoder.hidden_states(tokens[None, :], np.ones((1, len(tokens)), dtype=np.int64))[0]
    logits = hidden @ mean.item_matrix.T + mean.item_bias
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(mean.score(user)[0], np.log(probs.mean(axis=0)), rtol=1e-5, atol=1e-5)
    # the catalogue head runs at every position instead of the last one
    n_items, d = mean.item_matrix.shape
    assert mean.request_work(user).scoring_macs == len(tokens) * n_items * d
    assert fitted.request_work(user).scoring_macs == n_items * d


def test_bad_settings_fail_in_one_line_before_any_work():
    with pytest.raises(ConfigError, match="choose one of fp32"):
        TrainedGenerative(variant="distilled")
    with pytest.raises(ConfigError, match="not divisible"):
        TrainedGenerative(hidden=30, heads=4)
    with pytest.raises(ConfigError, match="patience"):
        TrainedGenerative(patience=-1)
    with pytest.raises(ConfigError, match="scoring"):
        TrainedGenerative(scoring="first")
    with pytest.raises(ConfigError, match="no parameter"):
        registry.get("llm-generative").build(width=64)


def test_a_model_over_item_ids_cannot_be_distilled_and_rejects_over_long_inputs(fitted):
    from bench.variants import build_sequence_model

    with pytest.raises(ConfigError, match="distils on texts"):
        build_sequence_model(fitted.encoder.resolved_model, "distilled+onnx")
    too_long = np.zeros((1, TINY["max_len"] + 1), dtype=np.int64)
    with pytest.raises(ConfigError, match="length <= 8"):
        fitted.encoder.hidden_states(too_long, np.ones_like(too_long))


def test_a_cell_through_the_registry_reports_quality_fit_and_the_gate_key(model_cache_dir):
    from bench.cell import run_cell
    from bench.scenario import CellSpec, Settings

    assert registry.get("llm-generative").family == "llm"
    params = {k: v for k, v in TINY.items() if k not in ("threads", "seed")}
    spec = CellSpec(
        "synthetic:users=40,items=30,interactions=600,seed=3",
        "temporal-loo",
        "llm-generative",
        variant="fp32",
        params={**params, "epochs": 3, "cache_dir": str(model_cache_dir)},
        loads=("single-stream",),
    )
    settings = Settings(
        threads=1, k=5, ks=(5,), stream_min_count=5, stream_min_s=0.01, stream_max_s=1.0, warmup_count=1
    )
    cell = run_cell(spec, settings, pinned={})
    assert cell.label == "measured" and cell.metric("ndcg@5").n == 40
    assert cell.metric("fit_s").value > 0 and cell.metric("train_steps").value > 0
    assert cell.metric("flops_per_rec").label == "estimated"
    assert cell.extras["gate_key"].startswith("llm-generative|") and "variant" not in cell.extras["gate_key"]
