"""The documentation figures come from docs/figures.py: it runs (into a temporary directory, when
matplotlib is installed: it is not a test dependency), every committed PNG has a figure function,
and every figure a family page links exists.

Regenerate the committed figures with ``python docs/figures.py`` (see docs/contributing.md).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_figures_script_draws_every_figure(tmp_path):
    pytest.importorskip("matplotlib")
    subprocess.run([sys.executable, str(DOCS / "figures.py"), "--out", str(tmp_path)], check=True, capture_output=True)
    drawn = {p.name for p in tmp_path.glob("*.png")}
    committed = {p.name for p in (DOCS / "figures").glob("*.png")}
    assert committed == drawn, "docs/figures/ out of step with docs/figures.py: run python docs/figures.py"


def test_linked_figures_exist():
    for page in DOCS.parent.glob("*.md"), DOCS.glob("*.md"):
        for md in page:
            for link in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", md.read_text()):
                assert (md.parent / link).is_file(), f"{md.name} links a missing figure {link}"
