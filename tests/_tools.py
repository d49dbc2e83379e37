"""System tools that some tests need (qemu-user, objdump, a cross compiler): a test asks for one
with `require_tool`, and runs commands with `run`. Where the tool is missing the test skips with
the reason, except under
LOSSKIT_REQUIRE_TOOLS=1, which `.ci/run` sets after installing them all: there a missing tool
fails the test, so CI can never pass by skipping what it was meant to check."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

REQUIRED = os.environ.get("LOSSKIT_REQUIRE_TOOLS") == "1"


def unavailable(reason: str) -> None:
    """Skips the calling test, or fails it under LOSSKIT_REQUIRE_TOOLS=1."""
    if REQUIRED:
        pytest.fail(f"{reason} (LOSSKIT_REQUIRE_TOOLS=1: .ci/run installs it, so this is a failure)")
    pytest.skip(reason)


def require_tool(name: str, package: str) -> str:
    """The path of the program `name`, from the Debian package `package`."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"needs {name} (apt-get install {package})")
    assert path is not None
    return path


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Runs a command; on failure shows its output in the test report."""
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result
