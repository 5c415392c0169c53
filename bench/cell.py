"""What one cell does, inside its own fresh process: load, split, fit, evaluate, put under load, account.

Data flows one way: spec -> dataset/split -> recommender -> measurements -> CellResult.
The runner (bench.runner) owns process isolation; this module owns the order of work inside a cell.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.cell_common import Phases, Progress, check_checksum, new_result, run_context
from bench.per_user import PerUser
from bench.recommenders.base import PER_REQUEST, Recommender
from bench.results import CellResult
from bench.scenario import CellSpec, Settings

__all__ = ["run_cell", "run_context", "check_checksum", "Phases", "Progress"]


def _noop(_: str) -> None:
    pass


def run_cell(
    spec: CellSpec,
    settings: Settings,
    progress: Progress = _noop,
    pinned: dict[str, Any] | None = None,
    expected_checksum: str | None = None,
) -> CellResult:
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

    result = new_result(spec)
    phases = Phases(progress)
    phases.start("data", "loading data")
    dataset = load_dataset(spec.dataset, data_dir=settings.data_dir)
    check_checksum(spec, dataset, expected_checksum)
    split = make_split(dataset, spec.split, seed=settings.seed)
    result.provenance = {
        "threads": pinned,
        "seed": settings.seed,
        "data_checksum": dataset.checksum,
        "data_source": dataset.source,
        "n_users": dataset.n_users,
        "n_items": dataset.n_items,
        "n_interactions": len(dataset.interactions),
        "n_train": len(split.train),
        "n_valid": len(split.valid),
        "n_test": len(split.test),
    }

    if spec.settings:
        result.extras["settings_overrides"] = dict(spec.settings)  # this cell's own stop rules, timeout, ...
    entry = registry.get(spec.recommender)
    result.family = entry.family
    recommender: Recommender = entry.build_in(run_context(spec, settings), dict(spec.params))
    result.params = {**_recorded_params(recommender), **result.params}
    result.label = "cost-only" if recommender.cost_only else "measured"
    gate_key = recommender.gate_key()
    if gate_key is not None:  # "the same model" for the quality gate: every ranking-relevant parameter but the variant
        result.extras["gate_key"] = gate_key

    # a model whose fit cannot hold in memory (EASE's dense item x item at 100k items) fails here, at once,
    # with the figures, instead of being killed minutes in
    from bench.memcheck import check_fit_memory

    need = check_fit_memory(
        spec.recommender, dataset.n_users, dataset.n_items, len(split.train), params=spec.params, variant=spec.variant
    )
    if need is not None:
        result.add("fit_memory_need_bytes", need, "bytes", label="estimated", flag="analytic pre-check before fit")

    # RSS is sampled from a thread outside the timed code; the baseline is taken with the data loaded,
    # so peak_rss_bytes is what the recommender itself adds.
    with RssSampler() as rss:
        phases.start("fit", "fitting")
        t0 = time.perf_counter_ns()
        recommender.fit(split.train_set())
        fit_s = (time.perf_counter_ns() - t0) / 1e9
        if recommender.cost_only:
            result.label = "cost-only"  # LLM recommenders know whether their weights are random only once fitted
        result.add("fit_s", fit_s, "s", n=1)
        for key, value in recommender.stats.items():
            # the cell's own figures (fit_s, ...) are measured here: a recommender's stat never duplicates one
            if isinstance(value, (int, float)) and not isinstance(value, bool) and result.metric(key) is None:
                result.add(key, value, _unit_of(key), n=1)
        result.add("footprint_bytes", recommender.footprint(), "bytes")

        flops = _flops_per_rec(recommender, split.test_users(), settings.seed)
        if flops is not None:
            result.add("flops_per_rec", flops, "FLOP", label="estimated", flag="analytic count over the test users")
        nbytes = recommender.bytes_per_user(split.test_users())
        if nbytes is not None:
            result.add(
                "bytes_per_rec",
                nbytes,
                "bytes",
                label="estimated",
                flag="analytic: model state read by one request alone + its score row",
            )
            shared = recommender.batch_shared_bytes()
            if shared > 0:
                result.add(
                    "bytes_shared_per_call",
                    shared,
                    "bytes",
                    label="estimated",
                    flag="analytic: of bytes_per_rec, read once by a batched call for all its requests",
                )
        for key, value in recommender.extras.items():
            result.extras[key] = value  # what the recommender records about itself (architecture, tokenizer)
        exclude = _exclusion(split)
        if result.label == "cost-only":
            progress("skipping quality (cost-only model)")
        elif recommender.is_probe:
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
    result.add(
        "peak_rss_bytes",
        mem.peak_rss_bytes,
        "bytes",
        n=mem.n_samples,
        flag="" if mem.max_gap_s <= 0.05 else f"sampling gaps up to {mem.max_gap_s * 1e3:.0f} ms",
    )
    return result


def _recorded_params(recommender: Recommender) -> dict[str, Any]:
    """The recommender's resolved hyper-parameters (defaults included) that a results file can hold as JSON."""
    return {k: v for k, v in recommender.get_params().items() if _json_plain(v)}


def _json_plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_json_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_plain(v) for k, v in value.items())
    return False


def _flops_per_rec(recommender: Recommender, users: np.ndarray, seed: int) -> float | None:
    """The recommender describes its requests' work (`request_work`); bench.measure.flops counts it. A model
    whose description is costly to build (a decoder's prompts) asks for a seeded sample of the users."""
    from bench.measure.flops import request_flops

    users = np.asarray(users)
    limit = recommender.work_sample_users
    if limit is not None and users.size > limit:
        users = np.sort(np.random.default_rng(seed).choice(users, limit, replace=False))
    work = recommender.request_work(users)
    return None if work is None else request_flops(work)


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
        recommender, split, ks=settings.ks, part="test", users=users, cold_items=split.cold_items
    )
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


def _loads(result: CellResult, recommender, split, exclude, settings: Settings, spec: CellSpec, phases: Phases) -> None:
    """Each of the cell's loads, by name from the load registry, with the scenario's config for it."""
    from bench.measure import load_registry
    from bench.measure.timer import make_sync

    rng = np.random.default_rng(settings.seed)
    pool = rng.permutation(split.test_users())
    k = min(settings.k, split.n_items)

    def serve(users: np.ndarray):
        return recommender.recommend(users, k, exclude=exclude)

    def relay(event) -> None:
        phases.progress(f"{event.message or event.phase} ({event.done} calls)")

    context = load_registry.LoadContext(
        pool=pool, seed=settings.seed, sync=make_sync(spec.device), progress=relay, device=spec.device
    )
    load_registry.check_names(spec.loads, f"cell {spec.name}")
    # registry order (offline, single-stream, server, then plugins' loads), whatever order the cell lists them
    # in: every cell's loads run in the same order, so one load never warms the model for another differently
    for name in (n for n in load_registry.names() if n in spec.loads):
        load = load_registry.get(name)
        config = settings.load_config(name)
        phases.start(name, load.describe(config))
        out = load.run(serve, config, context)
        result.metrics.extend(out.rows)
        result.timings.extend(out.timings)
        result.extras.update(out.extras)


def _extra_measurements(result: CellResult, recommender, split, exclude, settings: Settings, phases: Phases) -> None:
    """Figures only the recommender can time, from inside a call (e.g. a decoder's time to first token).

    `Recommender.extra_measurements(users, k, exclude) -> list[dict]` (none by default); each dict is either
    timing samples, summarised here like every load (n, percentiles with bootstrap intervals, trust flags) into
    `{prefix}_p50_ms` ... `{prefix}_mean_ms`, or one figure (label "measured" unless an analytic figure says
    "estimated"). A figure timed one request at a time (`load` PER_REQUEST) is filed under the single-stream load.
    """
    if type(recommender).extra_measurements is Recommender.extra_measurements:
        return  # the default measures nothing: no phase to announce
    from bench.measure.load_registry import SINGLE_STREAM
    from bench.measure.stats import metric_rows, summarize

    phases.start("extra", "the recommender's own timings")
    users = np.random.default_rng(settings.seed).permutation(split.test_users())
    for item in recommender.extra_measurements(users, min(settings.k, split.n_items), exclude):
        load = str(item.get("load", ""))
        load = SINGLE_STREAM if load == PER_REQUEST else load
        if "samples_ms" in item:
            summary = summarize(item["samples_ms"], unit="ms", name=item["metric"], seed=settings.seed)
            # "load" of the timing names the figure, so readers of single-stream latency never pick these samples
            result.timings.append(
                {
                    "load": f"{load}:{item['metric']}" if load else item["metric"],
                    "batch_size": 1,
                    "unit_of_work": item.get("unit_of_work", "requests"),
                    **summary.to_dict(),
                }
            )
            result.metrics.extend(
                metric_rows(summary, prefix=item["metric"], load=load, include=("p50", "p90", "p99", "mean"))
            )
        else:
            if "work_ratio" in item:  # an analytic ratio of two described works, counted where FLOPs are counted
                from bench.measure.flops import work_flops

                num, den = item["work_ratio"]
                item = {**item, "value": work_flops(num) / work_flops(den)}
            result.add(
                item["metric"],
                item["value"],
                item.get("unit", ""),
                load=load,
                n=item.get("n"),
                flag=item.get("flag", ""),
                label=item.get("label", "measured"),
            )
