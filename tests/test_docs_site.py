"""The documentation site: docs/ builds with ``sphinx-build -W`` (a broken reference, a docstring
that does not parse, a page missing from the table of contents fail), its API reference holds every
public function and class, and its formulas typeset in a real browser.

The browser check renders each page holding math in headless chromium, after MathJax has run, and
requires one typeset formula per formula of the page and no MathJax error (a TeX slip such as
``\\text{log_input}`` renders as a red error box, which the build itself cannot see); it also
screenshots the index and a loss page with its formula and figure (kept in
``$LOSSKIT_DOCS_SCREENSHOTS`` when set, to look at).

Needs ``pip install ".[docs]"`` and ``apt-get install chromium``; skips without them, fails under
``LOSSKIT_REQUIRE_TOOLS=1`` (``.ci/run`` installs both). About a minute on 2 cores.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import shutil
import struct
import sys
from pathlib import Path

import pytest

import losskit
import losskit.functional as F
from _tools import require_tool, run, unavailable

REPO = Path(__file__).resolve().parents[1]
DOCS_MODULES = ("sphinx", "myst_parser", "furo", "sphinx-mathjax-offline")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [m for m in DOCS_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        unavailable(f"the docs build needs {', '.join(missing)} (pip install \".[docs]\")")
    out = tmp_path_factory.mktemp("site")
    # The losskit under test (a source tree's, or the installed one) is the one documented.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(losskit.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-E",
            "-q",
            "-b",
            "html",
            "-d",
            str(out / "doctrees"),
            str(REPO / "docs"),
            str(out / "html"),
        ],
        env=env,
        cwd=REPO,
    )
    return out / "html"


def test_reference_documents_every_public_function_and_class(site: Path) -> None:
    html = "".join(p.read_text() for p in (site / "reference").glob("*.html"))
    anchors = set(re.findall(r'id="([\w.]+)"', html))
    functions = [
        f"losskit.functional.{n}"
        for n, f in inspect.getmembers(F, inspect.isfunction)
        if not n.startswith("_") and f.__module__ == F.__name__
    ]
    classes = [f"losskit.{n}" for n in losskit.__all__ if isinstance(getattr(losskit, n), type)]
    assert len(functions) >= 3 * 22 and len(classes) >= 22
    # losskit.dask has a function for each of losskit.functional's (their formulas are there).
    distributed = [f"losskit.dask.{n.rsplit('.', 1)[1]}" for n in functions]
    missing = [name for name in functions + classes + distributed if name not in anchors]
    assert not missing, f"not in the API reference: {missing}"


def test_every_figure_is_shown(site: Path) -> None:
    shown = set(
        re.findall(r'src="(?:\.\./)?_images/([\w.-]+\.png)"', "".join(p.read_text() for p in site.rglob("*.html")))
    )
    committed = {p.name for p in (REPO / "docs" / "figures").glob("*.png")}
    assert committed <= shown, f"figures on no page: {sorted(committed - shown)}"
    assert all((site / "_images" / name).is_file() for name in shown)


def _formulas(page: str) -> int:
    """The formulas of a built page: Sphinx writes each as \\( ... \\) or \\[ ... \\] inside an
    element of class "math" for MathJax to typeset."""
    return sum(
        len(re.findall(r"\\\(|\\\[", m))
        for m in re.findall(r'(?s)<(?:span|div) class="math[^"]*">(.*?)</(?:span|div)>', page)
    )


def _typeset_dom(chromium: str, page: Path) -> str:
    """The page's DOM once its scripts (MathJax) have run, in headless chromium."""
    return run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=20000",
            "--dump-dom",
            page.as_uri(),
        ],
        timeout=300,
    ).stdout


def test_math_renders_in_a_browser(site: Path) -> None:
    chromium = require_tool("chromium", "chromium")
    pages = {p: _formulas(p.read_text()) for p in site.rglob("*.html")}
    pages = {p: n for p, n in pages.items() if n}
    # the reference of every family, the package page and the notation of losskit.functional
    assert len([p for p in pages if p.parent.name == "reference"]) >= 7, sorted(map(str, pages))
    for page, formulas in sorted(pages.items()):
        dom = _typeset_dom(chromium, page)
        name = page.relative_to(site)
        errors = re.findall(r'data-mjx-error="([^"]*)"', dom)
        assert not errors, f"{name}: MathJax errors {errors}"
        assert dom.count("<mjx-container") == formulas, (
            f"{name}: {formulas} formulas, typeset {dom.count('<mjx-container')}"
        )
        # No TeX left as text: strip the markup, code and MathJax's hidden MathML copy.
        text = re.sub(r"(?s)<(script|style|pre|code|mjx-assistive-mml)\b[^>]*>.*?</\1>", "", dom)
        text = re.sub(r"<[^>]+>", "", text)
        leftover = re.findall(r".{0,30}(?:\\(?:frac|partial|sum|log|ell|text|operatorname)\b|\$[^$\s]).{0,30}", text)
        assert not leftover, f"{name}: raw TeX in the page text: {leftover[:3]}"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_screenshots_of_the_index_and_a_loss_page(site: Path, tmp_path: Path) -> None:
    chromium = require_tool("chromium", "chromium")
    shots = Path(os.environ.get("LOSSKIT_DOCS_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    for page, height in (("index.html", 1400), ("reference/pointwise.html", 2000)):
        png = shots / (page.replace("/", "_").removesuffix(".html") + ".png")
        png.unlink(missing_ok=True)
        run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--window-size=1280,{height}",
                "--virtual-time-budget=20000",
                f"--screenshot={png}",
                (site / page).as_uri(),
            ],
            timeout=300,
            cwd=shots,
        )
        assert _png_size(png) == (1280, height)
        # A blank or unstyled page compresses to almost nothing; these hold text, formulas, a figure.
        assert png.stat().st_size > 100_000, f"{png}: {png.stat().st_size} bytes"
    if shots == tmp_path:
        shutil.rmtree(shots, ignore_errors=True)
