"""Optional report sections that appear only when a run has the dimension they are about.

A section builder takes (run, views, out_dir) and returns a Section (or None when the run lacks that
dimension). write_report renders every returned Section into index.html and report.md through the
renderers' `sections` argument (Section.html_block / markdown_block).
A new section is one module with a `section(run, views, out_dir)` function plus one line in BUILDERS.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from bench.report.charts import Chart
from bench.report.view import CellView
from bench.results import RunResult

#: "module:function" of each optional section, in the order they appear
BUILDERS = (
    "bench.report.scaling:section",
    "bench.report.coldstart:section",
    "bench.report.sizes:section",
    "bench.report.online:section",
    "bench.report.decoders:section",
)


@dataclass
class Section:
    key: str  # the HTML anchor
    title: str
    intro_html: str  # escaped HTML shown under the title
    charts: list[Chart] = field(default_factory=list)
    table_html: str = ""  # escaped HTML after the charts
    markdown: str = ""  # the same content for report.md, without its heading

    def html_block(self) -> tuple[str, str, str]:
        """(anchor id, title, html) as bench.report.html.render's `sections` takes them."""
        from bench.report.html import chart_html

        return self.key, self.title, self.intro_html + "".join(chart_html(c) for c in self.charts) + self.table_html

    def markdown_block(self) -> str:
        """A Markdown block with its own heading, as bench.report.markdown.render's `sections` takes them."""
        charts = "".join(f"\n\n![{c.title}]({c.path.name})" for c in self.charts if c.path is not None)
        return f"## {self.title}\n\n{self.markdown.rstrip()}{charts}\n"


def build_sections(run: RunResult, views: list[CellView], out_dir: Path) -> list[Section]:
    out = []
    for target in BUILDERS:
        module, name = target.split(":")
        section = getattr(importlib.import_module(module), name)(run, views, Path(out_dir))
        if section is not None:
            out.append(section)
    return out
