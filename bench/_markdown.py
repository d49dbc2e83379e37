"""Writes a benchmark's table into a markdown file between markers of its own, so several scripts
share docs/performance.md and each re-run replaces only its section."""

from __future__ import annotations

import os
from typing import List


def write_section(path: str, name: str, lines: List[str]) -> None:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = open(path).read() if os.path.exists(path) else ""
    section = "\n".join([begin, ""] + lines + ["", end])
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text += "\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)
