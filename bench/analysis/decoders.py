"""Run-level figures for decoder-LLM ranking cells: the same request priced at hosted-API rates.

A decoder cell (llm-decoder-rank) records the request it served as a hosted API would bill it: calls per
recommendation, every call's whole prompt, the prompt part the calls share, and the output tokens, all counted
with o200k_base on the real prompts. Each hosted entry of the run's price sheet prices that very request:

    hosted_same_prompt_usd_per_1k_recs@ENTRY   label estimated; 1,000 x hosted_usd_per_rec(entry, input, cached, output)

where `cached` is the shared prefix of every call but the first, when the provider caches prefixes that long
(its `min_cached_prefix_tokens`) and has a cached-input price. Beside the cell's measured `usd_per_1k_recs`,
this is "this decoder on this hardware vs that API for the same prompt", from one run. Reads the prices the
run was costed with (run.derived.pricing.hosted), so re-pricing a run re-prices these rows too.
"""

from __future__ import annotations

from bench.cost import HostedPrice, hosted_usd_per_rec
from bench.metrics import HOSTED_SAME_PROMPT_PREFIX
from bench.results import CellResult, RunResult
from bench.sizes import DECODER_RANK

#: the recommender whose cells these figures are about
RECOMMENDER = DECODER_RANK
PREFIX = HOSTED_SAME_PROMPT_PREFIX
TOKEN_ROWS = (
    "api_calls_per_rec",
    "api_input_tokens_per_rec",
    "api_prefix_tokens_per_call",
    "api_output_tokens_per_rec",
)
TOKENIZER = "o200k_base"


def _prices(run: RunResult) -> list[HostedPrice]:
    hosted = run.derived.pricing.hosted if run.derived.pricing is not None else {}
    return [HostedPrice(**entry) for entry in hosted.values()]


def same_prompt_usd_per_rec(
    price: HostedPrice, calls: float, input_tokens: float, prefix_tokens: float, output_tokens: float
) -> tuple[float, bool]:
    """$ per recommendation for a request of `calls` API calls; and whether the shared prefix was billed cached."""
    cached = (
        price.usd_per_1m_cached_input_tokens is not None
        and prefix_tokens >= price.min_cached_prefix_tokens
        and calls > 1
    )
    cached_tokens = (calls - 1) * prefix_tokens if cached else 0.0  # the first call writes the provider's cache
    return float(hosted_usd_per_rec(price, input_tokens, cached_tokens, output_tokens)), cached


def _cell_rows(cell: CellResult, prices: list[HostedPrice]) -> None:
    if any(cell.metric(name) is None for name in TOKEN_ROWS):
        return  # not a decoder cell that counted its request's tokens
    values = {name: cell.row(name) for name in TOKEN_ROWS}
    calls, inputs, prefix, outputs = (values[name].value for name in TOKEN_ROWS)
    for price in prices:
        usd, cached = same_prompt_usd_per_rec(price, calls, inputs, prefix, outputs)
        exact = price.tokenizer == TOKENIZER
        cell.add(
            PREFIX + price.name,
            usd * 1000.0,
            "usd",
            n=values["api_input_tokens_per_rec"].n,
            label="estimated",
            flag=(
                f"{price.model} list prices ({price.date}) for this cell's own request: {calls:g} call(s), "
                f"{inputs:,.0f} input + {outputs:,.0f} output tokens per recommendation"
                + (f", {prefix:,.0f}-token shared prefix billed cached" if cached else "")
                + ("" if exact else f"; tokens by {TOKENIZER}, an estimate of {price.provider}'s tokenizer")
            ),
        )


def add_hosted_same_prompt(run: RunResult) -> None:
    """Replace every cell's same-prompt hosted rows with fresh ones (idempotent)."""
    prices = _prices(run)
    for cell in run.cells:
        cell.metrics[:] = [m for m in cell.metrics if not m.metric.startswith(PREFIX)]
        if cell.status == "ok" and prices:
            _cell_rows(cell, prices)
