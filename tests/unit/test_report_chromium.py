"""Render index.html in headless Chromium, as a reader would open it from disk: every image must show.

Skipped where /usr/bin/chromium is absent (`.ci/run` installs Debian's chromium).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_report_sample_run import make_run, tiny_split

from bench import cost
from bench.report import write_report
from tests.support.analysed import analysed

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]

# Appended to a copy of the page only: the report itself carries no script.
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  document.body.setAttribute('data-img-widths',
    imgs.map(function (i) { return i.complete ? i.naturalWidth : -1; }).join(','));
});
</script>"""


def _chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("chromium-report")
    workload = cost.hosted_workload(tiny_split(), n_prompts=6, history_len=5, n_candidates=12)
    return write_report(analysed(make_run(), threads_used=2, hosted=[workload]), out)


def test_every_image_shows_in_headless_chromium(page, tmp_path):
    # the page must not need its PNG files beside it: open a copy alone in an empty directory
    alone = tmp_path / "alone"
    alone.mkdir()
    probe = alone / "index.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = _chromium(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], tmp_path)
    match = re.search(r'data-img-widths="([^"]*)"', done.stdout)
    assert match, f"chromium produced no DOM (rc={done.returncode}): {done.stderr[-500:]}"
    widths = [int(w) for w in match.group(1).split(",") if w]
    assert len(widths) == 6
    assert all(w > 0 for w in widths), widths


def test_screenshot_of_the_report(page, tmp_path):
    shot = tmp_path / "report.png"
    done = _chromium([f"--screenshot={shot}", "--window-size=1280,4000", page.as_uri()], tmp_path)
    assert shot.is_file(), f"no screenshot (rc={done.returncode}): {done.stderr[-500:]}"
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 4000)
        # a blank page is one colour: the rendered report has text and charts
        assert len(im.convert("L").getcolors(maxcolors=1 << 16) or []) > 50
    keep = page.parent / "chromium-screenshot.png"
    shutil.copy(shot, keep)  # kept beside the report for a person to look at
