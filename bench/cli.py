"""The `recbench` command: run, list, report, compare, data, selfcheck."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from bench.errors import BenchError, ConfigError
from bench.scenario import SkipScenario

EPILOG = """examples:
  recbench run                      # the default scenario (quick) on MovieLens-100K, results under reports/
  recbench run full --out /tmp/r    # every recommender, mode and variant
  recbench run quick --recommenders ease,pop --seed 1
  recbench run ci --executor ray --address auto   # one Ray task per cell across a cluster's nodes
  recbench run --resume reports/<run>             # finish an interrupted run: only its missing and failed cells
  recbench report reports/<run>     # rebuild index.html / PNGs / report.md from a results file
  recbench compare BASE HEAD        # regression verdict: exit 0 ok, 1 regression, 2 bad input
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2) naming the problem and where help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def _csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _names(text: str) -> list[str]:
    names = _csv_list(text)
    if not names:
        raise argparse.ArgumentTypeError(
            f"{text!r} names nothing: give comma-separated names, e.g. ease,pop (see `recbench list`)"
        )
    return names


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in _csv_list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers (e.g. 1,32,256)"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="recbench",
        description="Measure what a language-model recommender costs beside classic collaborative filtering.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="run a scenario and write results.json, results.csv and a report",
        description="Run every cell of a scenario, each in a fresh process, and write "
        "OUT/<run_id>/results.{json,csv}, index.html, PNGs and report.md.",
    )
    run.add_argument(
        "scenario",
        nargs="?",
        help="scenario name (see `recbench list`) or path to a .py file (default: quick; with --resume, the run's own)",
    )
    run.add_argument("--out", type=Path, help="directory for run folders (default: reports)")
    run.add_argument(
        "--dataset",
        action="append",
        help="dataset to use instead of the scenario's (repeat for several): ml-100k, synthetic[:users=..,items=..,interactions=..,seed=..], or a CSV/Parquet path",
    )
    run.add_argument("--recommenders", type=_names, help="comma-separated recommenders to keep (or add) e.g. ease,pop")
    run.add_argument("--seed", type=int, help="split and model seed (default: the scenario's, 0)")
    run.add_argument("--threads", type=int, help="threads per cell for torch, ONNX Runtime and BLAS (default: 2)")
    run.add_argument(
        "--device", choices=["cpu", "cuda", "auto"], help="device for language-model cells (default: the scenario's)"
    )
    run.add_argument("--k", type=int, help="list length served under load (default 10)")
    run.add_argument("--batch-sizes", type=_int_list, help="offline batch sizes (default 1,32,256)")
    run.add_argument("--slo-ms", type=float, help="server-load p99 latency objective in ms (default 100)")
    run.add_argument(
        "--cell-timeout", type=float, help="seconds before a cell is stopped and marked failed (default 600)"
    )
    run.add_argument("--quality-users", type=int, help="rank a seeded sample of this many test users (default 0 = all)")
    run.add_argument("--data-dir", help="data cache directory (default: $RECBENCH_DATA_DIR or the user cache)")
    run.add_argument("--prices", type=Path, help="price sheet TOML overriding the built-in one")
    run.add_argument(
        "--instance",
        action="append",
        metavar="[NODE=]NAME",
        help="instance this machine is priced as (default: a per-vCPU share of c7i.xlarge); on a run "
        "across machines, NODE=NAME prices one node (as rows name it); repeat for several",
    )
    run.add_argument("--no-report", action="store_true", help="write results only, no HTML/PNG report")
    run.add_argument(
        "--plugin",
        action="append",
        metavar="MODULE",
        help="a module name or .py file that registers your own recommenders, variants or loads; "
        "imported before the scenario and in every cell process (repeat for several)",
    )
    where = run.add_argument_group("where cells run (see docs/cluster.md)")
    where.add_argument(
        "--executor",
        default="local",
        metavar="{local,ray}",
        help="local: each cell in a fresh process on this machine, one at a time (default); ray: each "
        "cell a Ray task on a node of a Ray cluster (needs pip install 'recbench[ray]')",
    )
    where.add_argument(
        "--address",
        help="the Ray cluster: auto (one already running, e.g. `ray start --head`; the "
        "default), ray://HOST:PORT (Ray Client) or HOST:PORT",
    )
    where.add_argument(
        "--cells-per-node",
        type=int,
        metavar="N",
        help="timed cells a Ray node runs at once (default 1: a cell never shares its node, so "
        "timings stay honest); recorded on every row",
    )
    where.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="finish the run in RUN_DIR: run only its missing and failed cells and complete its results "
        "and report; refused if the scenario, settings or code version differ",
    )

    sub.add_parser("list", help="list scenarios, recommenders, datasets, variants and splits")

    rep = sub.add_parser("report", help="(re)build the HTML/PNG/Markdown report from a results file")
    rep.add_argument("results", type=Path, help="results.json or the run directory holding it")
    rep.add_argument("--out", type=Path, help="output directory (default: beside the results file)")
    rep.add_argument(
        "--prices",
        type=Path,
        help="re-price the run with this price sheet TOML (else the run's own figures are shown as they were computed)",
    )
    rep.add_argument("--instance", metavar="NAME", help="re-price the run as if this machine were instance NAME")

    cmp_ = sub.add_parser("compare", help="compare two results files; exit 0 ok, 1 regression, 2 bad input")
    cmp_.add_argument("base", type=Path)
    cmp_.add_argument("head", type=Path)
    cmp_.add_argument("--strict-timing", action="store_true", help="timing regressions fail the gate (soft by default)")
    cmp_.add_argument("--markdown", type=Path, help="also write the verdict as Markdown to this file")

    data = sub.add_parser("data", help="fetch and verify datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", parser_class=_Parser)
    fetch = data_sub.add_parser("fetch", help="download (or copy) and verify a dataset into the cache")
    fetch.add_argument("name", help="dataset name, e.g. ml-100k")
    fetch.add_argument("--data-dir", help="cache directory (default: $RECBENCH_DATA_DIR or the user cache)")
    fetch.add_argument(
        "--from", dest="source_dir", help="a directory already holding the files (u.data/u.item or ml-100k.inter/.item)"
    )

    fin = sub.add_parser(
        "findings",
        help="store runs under reports/findings/ and rewrite docs/findings.md and the README's in-brief from them",
        description="Copy each run's results (raw timing samples dropped) to STORE/<scenario>.json "
        "and rewrite, from the stored files alone, the full findings block of "
        "docs/findings.md and the short in-brief block of the README. With no runs, "
        "re-render from what is stored. --check: exit 1 if either file differs.",
    )
    fin.add_argument(
        "runs", nargs="*", help="run directories (or results.json files) of `recbench run`, one per scenario"
    )
    fin.add_argument(
        "--doc", default="docs/findings.md", help="the file holding the full findings block (default: docs/findings.md)"
    )
    fin.add_argument("--readme", default="README.md", help="the file holding the in-brief block (default: README.md)")
    fin.add_argument(
        "--store", default="reports/findings", help="where the results are kept (default: reports/findings)"
    )
    fin.add_argument(
        "--check", action="store_true", help="only check that docs/findings.md and the README match the stored results"
    )

    sc = sub.add_parser(
        "selfcheck", help="time one MiniLM forward with the suite's timer and a plain loop; they must agree"
    )
    sc.add_argument("--model", default="minilm")
    sc.add_argument("--threads", type=int, default=2)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from bench.lifeline import Terminated, terminate_on_signals

    restore = terminate_on_signals()
    try:
        return _dispatch(args, parser)
    except SkipScenario as exc:  # the scenario cannot run here (e.g. no GPU): say so in one line, not an error
        print(f"recbench: skipped: {exc}")
        return exc.exit_code
    except BenchError as exc:
        print(f"recbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated as exc:  # SIGTERM (timeout, CI cancellation) or SIGHUP: cells stopped, files valid
        print(
            f"recbench: terminated by {exc}; the running cell was stopped, results written so far are "
            "complete and valid",
            file=sys.stderr,
        )
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("recbench: interrupted; results written so far are complete and valid", file=sys.stderr)
        return 130
    finally:
        restore()


def _dispatch(args, parser) -> int:
    if args.command == "run":
        return _run(args)
    if args.command == "list":
        return _list()
    if args.command == "report":
        return _report(args)
    if args.command == "compare":
        from bench.compare import main_compare

        return main_compare(args.base, args.head, strict_timing=args.strict_timing, markdown_path=args.markdown)
    if args.command == "data":
        if args.data_command != "fetch":
            raise ConfigError(
                "`recbench data` needs an action: `recbench data fetch NAME` (see `recbench data --help`)"
            )
        from bench.data import fetch

        path = fetch(args.name, data_dir=args.data_dir, source_dir=args.source_dir)
        print(f"{args.name}: verified, cached at {path}")
        return 0
    if args.command == "findings":
        from bench.findings import main_findings

        return main_findings(args.runs, args.readme, args.doc, args.store, args.check)
    if args.command == "selfcheck":
        from bench.selfcheck import main_selfcheck

        return main_selfcheck(args.model, args.threads)
    raise AssertionError(args.command)


def _run(args) -> int:
    from bench import runner
    from bench import scenario as scenario_mod
    from bench.console import RunDisplay, print_summary

    if args.resume is not None and args.out is not None:
        raise ConfigError("--out and --resume: a resumed run writes into its own directory; drop --out")
    if args.resume is not None:
        from bench.resume import scenario_of

        name = scenario_of(args.resume) if args.scenario is None else args.scenario
    else:
        name = "quick" if args.scenario is None else args.scenario  # an empty name is refused, not the default
    from bench import plugins

    extra_plugins = tuple(str(Path(p).resolve()) if p.endswith(".py") else p for p in args.plugin or ())
    plugins.load(extra_plugins)  # a bad name fails here, in one line, before the scenario is even read
    sc = scenario_mod.load(name)
    sc = replace(sc, plugins=tuple(dict.fromkeys((*sc.plugins, *extra_plugins))))
    sc = sc.filtered(datasets=args.dataset, recommenders=args.recommenders)
    overrides = {
        key: value
        for key, value in {
            "seed": args.seed,
            "threads": args.threads,
            "k": args.k,
            "batch_sizes": args.batch_sizes,
            "slo_ms": args.slo_ms,
            "cell_timeout_s": args.cell_timeout,
            "quality_users": args.quality_users,
            "data_dir": args.data_dir,
        }.items()
        if value is not None
    }
    sc = sc.with_settings(**overrides)
    if args.device:
        from bench.variants.device import resolve_device

        device = resolve_device(args.device)
        sc = replace(
            sc, cells=tuple(replace(c, device=device) if c.variant != scenario_mod.NO_VARIANT else c for c in sc.cells)
        )
    sc.settings.validate()
    instance, node_instances = _instances(args.instance or [])
    executor_options = {
        key: value
        for key, value in {"address": args.address, "cells_per_node": args.cells_per_node}.items()
        if value is not None
    }
    options = runner.RunOptions(
        out_root=args.out or Path("reports"),
        prices=args.prices,
        instance=instance,
        node_instances=node_instances,
        report=not args.no_report,
        executor=args.executor,
        executor_options=executor_options,
        resume=args.resume,
    )
    display = RunDisplay(total=len(sc.cells), scenario=sc.name)
    with display:
        run, out_dir = runner.run(sc, options, listener=display.listener)
    print_summary(run, out_dir)
    return 0 if all(c.status != "failed" for c in run.cells) else 1


def _instances(values: list[str]) -> tuple[str | None, dict[str, str]]:
    """--instance NAME (this machine, or every node not named) and --instance NODE=NAME (one node)."""
    default, per_node = None, {}
    for value in values:
        node, sep, name = value.rpartition("=")
        if not sep:
            if default is not None:
                raise ConfigError(
                    f"--instance {default} and --instance {value}: one default instance; name nodes "
                    "with --instance NODE=NAME"
                )
            default = value
        elif not node or not name:
            raise ConfigError(f"--instance {value!r}: write NODE=NAME, e.g. --instance 10.0.0.5=c7i.xlarge")
        else:
            per_node[node] = name
    return default, per_node


def _list() -> int:
    from bench.listing import print_listing

    print_listing()
    return 0


def _report(args) -> int:
    from bench import results
    from bench.report import write_report

    run = results.load(args.results)
    if args.prices is not None or args.instance is not None:
        # re-pricing derives the run's figures again (bench.analysis), from its own cells and token counts; the
        # report then renders them as it renders any run
        from bench import cost
        from bench.analysis.derive import reprice

        prices = cost.load_prices(args.prices)
        if args.instance is not None:
            prices.instance(args.instance)  # unknown: one line naming the choices, before any work
        run.derived = reprice(run, prices, args.instance)
    src = args.results if args.results.is_dir() else args.results.parent
    out = write_report(run, args.out or src)
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
