"""Sphinx configuration of the losskit documentation site.

Build it (what CI runs, warnings are errors, so a broken reference fails the build)::

    pip install ".[docs]"
    python -m sphinx -W --keep-going -b html docs build/docs

The Markdown pages of docs/ are the site's prose (MyST); the API reference is generated from the
docstrings (docs/reference/, with docs/_ext/losskit_sphinx.py listing every loss of a family and
placing its figures). Math renders with MathJax 3 shipped inside the site
(sphinx-mathjax-offline): the pages need no network, at build time or when read.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

# losskit itself: installed (`pip install ".[docs]"`), or the source tree on PYTHONPATH (the
# development layout of docs/contributing.md).
import losskit  # noqa: E402

project = "losskit"
author = "losskit developers"
copyright = "losskit developers"
release = losskit.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static/: no CDN
    "losskit_sphinx",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "figures.py", "README.md"]
suppress_warnings: list[str] = []

# Markdown: GitHub-style heading anchors (the pages link `api.md#processes-and-cpus`), $...$ math.
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath", "amsmath"]

# The docstrings are Google style ("Args:") with reST math.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_default_options = {"show-inheritance": False}

# Every cross-reference must resolve (-W turns a miss into an error), except to the libraries
# whose inventories are not fetched (the build needs no network: no intersphinx), to names of
# torch's own that the adapters' signatures and docstrings mention, to private names, and to the
# type aliases of the signatures.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|torch|jax|typing|collections\.abc)(\..*)?"),
    (r"py:class", r"Linear|LinearCrossEntropyOptions"),  # torch.nn.Linear, torch's options type
    (r"py:meth", r"(load_)?state_dict"),  # torch.nn.Module's
    (r"py:.*", r"(losskit\.)?(\w+\.)*_\w+(\.\w+)*"),  # private (losskit._large_vocab.ASMoutput)
    (r"py:class", r"(ArrayLike|Gradients|Any|Optional|Union|Tuple|List|Dict|Callable|Sequence)(\[.*)?"),
    (r"py:class", r"(float|int|bool|str|object|None|type)"),
]

html_theme = "furo"
html_title = f"losskit {release}"
html_static_path = ["_static"]
html_css_files = ["losskit.css"]
html_show_sourcelink = False

# The docstrings write `\text{ignore\_index}`: LaTeX's text-mode macros, which MathJax only knows
# with its textmacros package (without it the page shows a stray backslash).
mathjax3_config = {
    "loader": {"load": ["[tex]/textmacros"]},
    "tex": {"packages": {"[+]": ["textmacros"]}},
}
