"""Sphinx extension of the losskit site: ``.. losskit-family:: pointwise`` documents every loss of
that family (its module in ``losskit/_functional/``), in definition order, with its three entry
points and the figures that draw it.

The list comes from the code (``losskit._functional._spec.LOSSES``), so a new loss appears in the
reference without editing a page; the figures come from docs/figures/, placed under the loss they
draw (a figure is named after its loss, ``ctc.png`` for ``ctc_loss``, or listed in
``SHARED_FIGURES``) with the figure function's docstring (docs/figures.py) as caption. A figure that
belongs to no loss is a warning, which ``sphinx-build -W`` makes an error.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

DOCS = Path(__file__).resolve().parents[1]
logger = logging.getLogger(__name__)

# Figures that draw several losses, shown once, under the first loss they draw.
SHARED_FIGURES = {
    "regression": "l1_loss",  # l1, mse, smooth_l1 and huber side by side
    "robust_regression": "log_cosh_loss",  # log_cosh and pseudo_huber beside huber
    "huber_family": "huber_loss",  # smooth_l1 and huber for several widths
    "bce_clamp": "binary_cross_entropy_with_logits",  # BCE against BCE with logits at the clamp
    "box_iou": "generalized_box_iou_loss",  # the three box IoU losses side by side
}


def _captions() -> Dict[str, str]:
    """The docstring of every figure function of docs/figures.py, by figure name (read, not
    imported: drawing needs matplotlib, the site does not)."""
    tree = ast.parse((DOCS / "figures.py").read_text())
    return {f.name: " ".join((ast.get_docstring(f) or "").split()) for f in tree.body if isinstance(f, ast.FunctionDef)}


def figures_by_loss(warn: bool = False) -> Dict[str, List[str]]:
    from losskit._functional._spec import LOSSES

    placed: Dict[str, List[str]] = {}
    for png in sorted((DOCS / "figures").glob("*.png")):
        stem = png.stem
        owner = SHARED_FIGURES.get(stem) or next((name for name in (stem, stem + "_loss") if name in LOSSES), None)
        if owner is None:
            if warn:
                logger.warning(
                    f"docs/figures/{png.name} draws no loss of losskit.functional: name it "
                    "after its loss or list it in SHARED_FIGURES (docs/_ext/losskit_sphinx.py)"
                )
            continue
        placed.setdefault(owner, []).append(stem)
    return placed


class LossFamily(SphinxDirective):
    required_arguments = 1

    def run(self) -> List[nodes.Node]:
        from losskit._functional._spec import LOSSES

        family = self.arguments[0]
        names = [n for n, spec in LOSSES.items() if spec.impl.__module__.rsplit(".", 1)[-1] == family]
        if not names:
            logger.warning(f"losskit-family: no loss in losskit._functional.{family}", location=self.get_location())
            return []
        figures, captions = figures_by_loss(), _captions()
        lines: List[str] = []
        for name in names:
            lines += [name, "-" * len(name), "", f".. autofunction:: losskit.functional.{name}", ""]
            for stem in figures.get(name, []):
                lines += [
                    f".. figure:: /figures/{stem}.png",
                    f"   :alt: {stem}",
                    "   :width: 100%",
                    "",
                    f"   {captions.get(stem) or stem}",
                    "",
                ]
            lines += [
                f".. autofunction:: losskit.functional.{name}_backward",
                "",
                f".. autofunction:: losskit.functional.{name}_forward_backward",
                "",
            ]
        container = nodes.section()
        nested_parse_with_titles(self.state, StringList(lines, source=f"<losskit-family {family}>"), container)
        return container.children


def setup(app: Sphinx) -> Dict[str, object]:
    app.add_directive("losskit-family", LossFamily)
    app.connect("builder-inited", lambda app: figures_by_loss(warn=True))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
