"""Writes a benchmark's table into a markdown file between markers of its own, so several scripts
share docs/performance.md and each re-run replaces only its section."""

from __future__ import annotations

import os
from typing import List


def write_section(path: str, name: str, lines: List[str]) -> None:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = open(path).read() if os.path.exists(path) else ""
    section = "\n".join([begin, ""] + lines + ["", end])
    counts = (text.count(begin), text.count(end))
    if counts == (1, 1) and text.index(begin) < text.index(end):
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    elif counts == (0, 0):
        text += "\n" + section + "\n"
    else:  # never splice around a stray or repeated marker: that duplicates the file
        raise SystemExit(f"{path}: expected one '{begin}' before one '{end}', found {counts[0]} and {counts[1]}")
    with open(path, "w") as f:
        f.write(text)
