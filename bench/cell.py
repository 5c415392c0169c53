"""What one cell does, inside its own fresh process: load, split, fit, evaluate, put under load, account.

Data flows one way: spec -> dataset/split -> recommender -> measurements -> CellResult.
The runner (bench.runner) owns process isolation; this module owns the order of work inside a cell.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any, Callable

import numpy as np

from bench.per_user import PerUser
from bench.results import CellResult
from bench.scenario import NO_VARIANT, CellSpec, Settings

Progress = Callable[[str], None]


def _noop(_: str) -> None:
    pass


class Phases:
    """Announces each phase of a cell and records its wall time (so a slow cell says where time went)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.wall_s: dict[str, float] = {}
        self._name: str | None = None
        self._t0 = time.perf_counter()

    def start(self, name: str, message: str | None = None) -> None:
        self.stop()
        self._name, self._t0 = name, time.perf_counter()
        self.progress(message or name)

    def stop(self) -> None:
        if self._name is not None:
            self.wall_s[self._name] = self.wall_s.get(self._name, 0.0) + time.perf_counter() - self._t0
            self._name = None


def run_cell(spec: CellSpec, settings: Settings, progress: Progress = _noop,
             pinned: dict[str, Any] | None = None, expected_checksum: str | None = None) -> CellResult:
    """Measure one cell. Raises on failure; the runner turns exceptions into failed rows.

    `pinned` is what bench.measure.threads.pin_threads recorded, when the caller pinned threads already.
    `expected_checksum` is the run's (the driver's) checksum of the dataset: on a node whose copy differs
    the cell fails before any measurement, so one run never mixes figures from two datasets.
    """
    if pinned is None:
        from bench.measure.threads import pin_threads
        pinned = pin_threads(settings.threads)
    from bench.data.replay import is_replay
    if is_replay(spec.split):  # an online update strategy over time windows: its own order of work
        from bench.replay_cell import run_replay_cell
        return run_replay_cell(spec, settings, progress, pinned, expected_checksum=expected_checksum)

    from bench.data import load_dataset
    from bench.data.splits import make_split
    from bench.measure.memory import RssSampler
    from bench.recommenders import registry

    result = CellResult(cell=spec.name, dataset=spec.dataset, split=spec.split, recommender=spec.recommender,
                        variant=spec.variant, device=spec.device, params=dict(spec.params))
    phases = Phases(progress)
    phases.start("data", "loading data")
    dataset = load_dataset(spec.dataset, data_dir=settings.data_dir)
    check_checksum(spec, dataset, expected_checksum)
    split = make_split(dataset, spec.split, seed=settings.seed)
    result.provenance = {"threads": pinned, "seed": settings.seed, "data_checksum": dataset.checksum,
                         "data_source": dataset.source, "n_users": dataset.n_users, "n_items": dataset.n_items,
                         "n_interactions": len(dataset.interactions), "n_train": len(split.train),
                         "n_valid": len(split.valid), "n_test": len(split.test)}

    if spec.settings:
        result.extras["settings_overrides"] = dict(spec.settings)  # this cell's own stop rules, timeout, ...
    entry = registry.get(spec.recommender)
    recommender = entry.build(**_constructor_params(entry, spec, settings))
    result.params = {**_recorded_params(recommender), **result.params}
    result.label = "cost-only" if getattr(recommender, "cost_only", False) else "measured"
    gate_key = getattr(recommender, "gate_key", None)
    if callable(gate_key):  # "the same model" for the quality gate: every ranking-relevant parameter but the variant
        result.extras["gate_key"] = gate_key()

    # a model whose fit cannot hold in memory (EASE's dense item x item at 100k items) fails here, at once,
    # with the figures, instead of being killed minutes in
    from bench.memcheck import check_fit_memory
    need = check_fit_memory(spec.recommender, dataset.n_users, dataset.n_items, len(split.train),
                            params=spec.params, variant=spec.variant)
    if need is not None:
        result.add("fit_memory_need_bytes", need, "bytes", label="estimated", flag="analytic pre-check before fit")

    # RSS is sampled from a thread outside the timed code; the baseline is taken with the data loaded,
    # so peak_rss_bytes is what the recommender itself adds.
    with RssSampler() as rss:
        phases.start("fit", "fitting")
        t0 = time.perf_counter_ns()
        recommender.fit(split.train_set())
        fit_s = (time.perf_counter_ns() - t0) / 1e9
        if getattr(recommender, "cost_only", False):
            result.label = "cost-only"  # LLM recommenders know whether their weights are random only once fitted
        result.add("fit_s", fit_s, "s", n=1)
        for key, value in (getattr(recommender, "stats", None) or {}).items():
            # the cell's own figures (fit_s, ...) are measured here: a recommender's stat never duplicates one
            if isinstance(value, (int, float)) and not isinstance(value, bool) and result.metric(key) is None:
                result.add(key, value, _unit_of(key), n=1)
        result.add("footprint_bytes", recommender.footprint(), "bytes")

        flops = recommender.flops_per_user(split.test_users())
        if flops is None and callable(getattr(recommender, "decoder_work", None)):
            flops = _decoder_flops_per_rec(recommender, split.test_users(), settings.seed)
        if flops is not None:
            result.add("flops_per_rec", flops, "FLOP", label="estimated", flag="analytic count over the test users")
        nbytes = recommender.bytes_per_user(split.test_users()) if hasattr(recommender, "bytes_per_user") else None
        if nbytes is not None:
            result.add("bytes_per_rec", nbytes, "bytes", label="estimated",
                       flag="analytic: model state read by one request alone + its score row")
        for key, value in (getattr(recommender, "extras", None) or {}).items():
            result.extras[key] = value  # what the recommender records about itself (architecture, tokenizer)
        exclude = _exclusion(split)
        if result.label == "cost-only":
            progress("skipping quality (cost-only model)")
        elif entry.family == "test":
            pass  # harness probes (noop) rank nothing meaningful: no quality to report
        else:
            phases.start("quality", "evaluating quality (full ranking)")
            _quality(result, recommender, split, settings, spec)
        _loads(result, recommender, split, exclude, settings, spec, phases)
        _extra_measurements(result, recommender, split, exclude, settings, phases)
        phases.stop()
    result.extras["phase_wall_s"] = phases.wall_s
    if result.label == "cost-only":
        # rows the loads append directly carry "measured"; in a random-weight cell every such figure is cost-only
        for row in result.metrics:
            if row.label == "measured":
                row.label = "cost-only"
    mem = rss.report()
    result.memory = mem.to_dict()
    result.add("peak_rss_bytes", mem.peak_rss_bytes, "bytes", n=mem.n_samples,
               flag="" if mem.max_gap_s <= 0.05 else f"sampling gaps up to {mem.max_gap_s * 1e3:.0f} ms")
    return result


def check_checksum(spec: CellSpec, dataset, expected_checksum: str | None) -> None:
    if expected_checksum is not None and dataset.checksum != expected_checksum:
        from bench.errors import DataError
        raise DataError(f"dataset {spec.dataset} on this node has checksum {dataset.checksum[:16]}, the run's is "
                        f"{expected_checksum[:16]}: this node holds other data; re-fetch it here "
                        f"(`recbench data fetch`) or point --data-dir at the same files")


def _constructor_params(entry, spec: CellSpec, settings: Settings) -> dict[str, Any]:
    """Scenario params plus the cell's variant/device/threads/seed where the constructor takes them."""
    params = dict(spec.params)
    accepted = entry.parameters()
    implied = {"variant": spec.variant, "device": spec.device, "threads": settings.threads, "seed": settings.seed}
    for key, value in implied.items():
        if key in accepted and key not in params and not (key == "variant" and value == NO_VARIANT):
            params[key] = value
    return params


def _recorded_params(recommender) -> dict[str, Any]:
    """The recommender's resolved hyper-parameters (defaults included) that a results file can hold as JSON."""
    get_params = getattr(recommender, "get_params", None)
    resolved = get_params() if callable(get_params) else {}
    return {k: v for k, v in resolved.items() if _json_plain(v)}


def _json_plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_json_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_plain(v) for k, v in value.items())
    return False


#: test users whose requests the analytic decoder FLOPs average over (each needs its candidates and prompts)
DECODER_FLOPS_USERS = 50


def _decoder_flops_per_rec(recommender, users: np.ndarray, seed: int) -> float:
    """A decoder recommender describes its passes (`decoder_work`); bench.measure.flops counts them."""
    from bench.measure.flops import decoder_pass_flops

    users = np.asarray(users)
    if users.size > DECODER_FLOPS_USERS:
        users = np.sort(np.random.default_rng(seed).choice(users, DECODER_FLOPS_USERS, replace=False))
    work = recommender.decoder_work(users)
    passes = np.asarray(work["passes"], dtype=np.float64)
    total = float(decoder_pass_flops(work["config"], passes[:, 0], passes[:, 1], passes[:, 2]).sum())
    return total / max(int(work["n_requests"]), 1) + float(work.get("retriever_flops_per_request", 0.0))


def _unit_of(key: str) -> str:
    for suffix, unit in (("_s", "s"), ("_bytes", "bytes"), ("_ms", "ms")):
        if key.endswith(suffix):
            return unit
    return ""


def _exclusion(split):
    """Items never to recommend at test time: everything seen in train and valid."""
    seen = split.train.matrix(split.n_users, split.n_items) + split.valid.matrix(split.n_users, split.n_items)
    seen.data[:] = 1.0
    return seen.tocsr()


def _quality(result: CellResult, recommender, split, settings: Settings, spec: CellSpec) -> None:
    from bench import quality
    users = None
    sample = settings.quality_users if spec.quality_users is None else spec.quality_users
    if sample:
        all_users = split.test_users()
        rng = np.random.default_rng(settings.seed)
        users = np.sort(rng.choice(all_users, size=min(sample, len(all_users)), replace=False))
    figures, evaluated, hits, n_relevant = quality.evaluate_ranking_per_user(
        recommender, split, ks=settings.ks, part="test", users=users, cold_items=split.cold_items)
    # what each user's own figures follow from travels with the cell, so that comparisons can be made on the
    # users two cells share (bench.per_user)
    result.per_user = PerUser(users=evaluated, hits=hits, n_relevant=n_relevant, part="test").to_dict()
    n_users = int(figures.pop("evaluated_users", 0)) or None
    n_cold = int(figures.pop("evaluated_cold_users", 0)) or None  # only with cold items (cold-items split)
    flag = "" if users is None else f"sampled users: {n_users}"
    for name, value in figures.items():
        result.add(name, value, "", n=n_cold if quality.metric_kind(name) == "cold_user" else n_users, flag=flag)
    if split.cold_items is not None:  # what the model keeps on items with history, beside the cold ones
        warm = quality.evaluate_warm(recommender, split, ks=settings.ks, users=users)
        n_warm = int(warm.pop("evaluated_warm_users", 0)) or None
        for name, value in warm.items():
            result.add(name, value, "", n=n_warm, flag=flag)
    if recommender.predicts_ratings:
        for name, value in quality.evaluate_rating(recommender, split, part="test").items():
            result.add(name, value, "rating", n=len(split.test))


def _loads(result: CellResult, recommender, split, exclude, settings: Settings, spec: CellSpec,
           phases: Phases) -> None:
    from bench.measure import loads
    from bench.measure.energy import EnergyMeter
    from bench.measure.timer import StopRule, make_sync

    rng = np.random.default_rng(settings.seed)
    pool = rng.permutation(split.test_users())
    k = min(settings.k, split.n_items)
    sync = make_sync(spec.device)

    def serve(users: np.ndarray):
        return recommender.recommend(users, k, exclude=exclude)

    def relay(event) -> None:
        phases.progress(f"{event.message or event.phase} ({event.done} calls)")

    if "offline" in spec.loads:
        phases.start("offline", "offline load: batch-size sweep")
        rule = StopRule(min_count=settings.offline_min_batches, min_duration_s=settings.offline_min_s,
                        max_count=100_000, max_duration_s=max(10.0, 4 * settings.offline_min_s),
                        warmup_count=2, warmup_s=0.0)
        sizes = spec.batch_sizes or settings.batch_sizes
        if settings.offline_sweep == "adaptive" and not spec.batch_sizes:
            sizes = loads.AdaptiveSweep(min_gain=settings.sweep_min_gain, max_batch=settings.sweep_max_batch,
                                        time_limit_s=settings.sweep_time_limit_s)
        with EnergyMeter() as energy:
            off = loads.offline(serve, pool, unit="users", batch_sizes=sizes, rule=rule,
                                seed=settings.seed, sync=sync, progress=relay)
        # the sweep's curve (throughput per batch size) and why it ended, for the report's sweep chart
        result.extras["offline_sweep"] = {
            "mode": "adaptive" if isinstance(sizes, loads.AdaptiveSweep) else "fixed", "stopped_by": off.stopped_by,
            "best_batch_size": off.best_batch_size,
            "curve": [{"batch_size": p.batch_size, "throughput_per_s": p.throughput_per_s} for p in off.points]}
        for p in off.points:
            result.timings.append({"load": "offline", "batch_size": p.batch_size, "unit_of_work": off.unit,
                                   "throughput_per_s": p.throughput_per_s, **p.latency.to_dict()})
        result.metrics.extend(off.metric_rows())
        _energy_rows(result, energy.result(), off)
    if "single-stream" in spec.loads:
        phases.start("single-stream", "single-stream load")
        rule = StopRule(min_count=settings.stream_min_count, min_duration_s=settings.stream_min_s, max_count=100_000,
                        max_duration_s=settings.stream_max_s, warmup_count=settings.warmup_count, warmup_s=0.0)
        ss = loads.single_stream(serve, pool, unit="requests", rule=rule, seed=settings.seed, sync=sync,
                                 progress=relay)
        result.timings.append({"load": "single-stream", "batch_size": 1, "unit_of_work": ss.unit,
                               **ss.latency.to_dict()})
        result.metrics.extend(ss.metric_rows())
    if "server" in spec.loads:
        phases.start("server", f"server load: highest Poisson rate with p99 <= {settings.slo_ms:g} ms")
        sv = loads.server_slo_search(serve, pool, unit="requests", slo_ms=settings.slo_ms,
                                     budget_s=settings.server_budget_s, min_trial_requests=settings.server_requests,
                                     seed=settings.seed, sync=sync, progress=relay)
        if sv.at_max is not None:
            result.timings.append({"load": "server", "batch_size": 1, "unit_of_work": sv.unit,
                                   "rate_per_s": sv.at_max.target_rate_per_s, **sv.at_max.latency.to_dict()})
        result.metrics.extend(sv.metric_rows())
        summary = sv.to_dict()
        summary.pop("at_max", None)  # its latency summary (with raw samples) is already under timings
        result.extras["server_slo_search"] = summary


def _extra_measurements(result: CellResult, recommender, split, exclude, settings: Settings,
                        phases: Phases) -> None:
    """Figures only the recommender can time, from inside a call (e.g. a decoder's time to first token).

    A recommender may define `extra_measurements(users, k, exclude) -> list[dict]`; each dict is either timing
    samples, `{"metric": prefix, "samples_ms": [...], "load": ..., "unit_of_work": ...}`, summarised here like
    every load (n, percentiles with bootstrap intervals, trust flags) into `{prefix}_p50_ms` ... `{prefix}_mean_ms`,
    or one figure, `{"metric": name, "value": v, "unit": ..., "load": ..., "n": ..., "flag": ..., "label": ...}`
    (label "measured" unless an analytic figure says "estimated").
    """
    hook = getattr(recommender, "extra_measurements", None)
    if not callable(hook):
        return
    from bench.measure.stats import metric_rows, summarize

    phases.start("extra", "the recommender's own timings")
    users = np.random.default_rng(settings.seed).permutation(split.test_users())
    for item in hook(users, min(settings.k, split.n_items), exclude) or []:
        load = str(item.get("load", ""))
        if "samples_ms" in item:
            summary = summarize(item["samples_ms"], unit="ms", name=item["metric"], seed=settings.seed)
            # "load" of the timing names the figure, so readers of single-stream latency never pick these samples
            result.timings.append({"load": f"{load}:{item['metric']}" if load else item["metric"], "batch_size": 1,
                                   "unit_of_work": item.get("unit_of_work", "requests"), **summary.to_dict()})
            result.metrics.extend(metric_rows(summary, prefix=item["metric"], load=load,
                                              include=("p50", "p90", "p99", "mean")))
        else:
            result.add(item["metric"], item["value"], item.get("unit", ""), load=load, n=item.get("n"),
                       flag=item.get("flag", ""), label=item.get("label", "measured"))


def _energy_rows(result: CellResult, energy: dict, off) -> None:
    """Joules per recommendation over the offline sweep, labelled measured (RAPL/NVML) or estimated."""
    joules = energy.get("joules")
    units = sum(p.units for p in off.points)
    if joules is None or not units:
        return
    label = energy.get("label", "estimated")
    result.add("energy_j_per_rec", joules / units, "J", load="offline", label=label)
    # how it was obtained travels with the figure; warm-up calls are in the joules but not in the units
    result.extras["energy_offline"] = {**energy, "scope": "whole offline sweep, warm-up calls included"}
