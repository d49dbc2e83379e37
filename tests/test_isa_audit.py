"""The binary audit: the built extension and the core library hold AVX-512 instructions only in
functions of losskit::kernels::avx512, and AVX/AVX2/FMA/BMI instructions only there or in
losskit::kernels::avx2. Everything else (the dispatcher, the checks, the bindings, static
initialisers, library code inlined anywhere) runs on every x86-64 CPU, so it must be baseline
code: the rule of cpp/src/common/cpu_dispatch.hpp, checked on the machine code itself.

The kernel objects of liblosskit.a are held to more: every function they define lives in their
target's namespace (an inline helper outside it is a weak symbol the linker may pick for every
target), and they have no static initialisers (those run at load, on any CPU).
"""

from __future__ import annotations

import collections
import platform
import re
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

import losskit
from _cpp import static_library
from _tools import require_tool

pytestmark = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64"), reason="the instruction-set audit is for x86-64 builds"
)

LEVELS = ("baseline", "avx2", "avx512")
AVX512 = re.compile(r"%zmm\d|%k[0-7]\b|%[xy]mm(?:1[6-9]|2\d|3[01])\b|\{1to\d+\}|\{%k[0-7]\}")
# BMI1/BMI2/LZCNT/MOVBE come with -mavx2 -mbmi2 builds; tzcnt is absent on purpose: GCC emits
# `rep bsf` for generic code, which objdump prints as tzcnt and which every CPU runs.
ABOVE_BASELINE_MNEMONICS = {
    "andn",
    "bextr",
    "blsi",
    "blsmsk",
    "blsr",
    "bzhi",
    "mulx",
    "pdep",
    "pext",
    "rorx",
    "sarx",
    "shlx",
    "shrx",
    "lzcnt",
    "movbe",
}
PREFIXES = {"rep", "repz", "repe", "repnz", "repne", "lock", "notrack", "bnd", "data16", "addr32", "cs", "ds"}


def instruction_level(mnemonic: str, operands: str) -> int:
    """0: any x86-64 CPU; 1: needs AVX2/FMA/BMI (VEX encoding); 2: needs AVX-512 (EVEX)."""
    if AVX512.search(operands):
        return 2
    if mnemonic.startswith("v") or "%ymm" in operands or mnemonic in ABOVE_BASELINE_MNEMONICS:
        return 1
    return 0


def allowed_level(function: str) -> int:
    if "losskit::kernels::avx512::" in function:
        return 2
    if "losskit::kernels::avx2::" in function:
        return 1
    return 0


def disassembly(path: Path) -> Iterator[Tuple[str, str, str, str]]:
    """(object, function, mnemonic, operands) for every instruction of `path`."""
    objdump = require_tool("objdump", "binutils")
    text = subprocess.run(
        [objdump, "-d", "-C", "--no-show-raw-insn", "--wide", str(path)], capture_output=True, text=True, check=True
    ).stdout
    obj, function = str(path), ""
    for line in text.splitlines():
        if line.endswith("file format elf64-x86-64"):
            obj = line.split(":")[0]
            continue
        head = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if head:
            function = head.group(1)
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not function:
            continue
        words = parts[1].split(None, 1)
        while words and words[0] in PREFIXES and len(words) > 1:
            words = words[1].split(None, 1)
        if words:
            yield obj, function, words[0], words[1] if len(words) > 1 else ""


def audit(path: Path) -> Tuple[Dict[Tuple[str, str], List[str]], collections.Counter]:
    """The instructions above their function's target, and how many instructions of each level
    each target's functions hold."""
    misplaced: Dict[Tuple[str, str], List[str]] = collections.defaultdict(list)
    counts: collections.Counter = collections.Counter()
    for obj, function, mnemonic, operands in disassembly(path):
        level, allowed = instruction_level(mnemonic, operands), allowed_level(function)
        counts[(LEVELS[allowed], LEVELS[level])] += 1
        if level > allowed:
            misplaced[(obj, function)].append(f"{mnemonic} {operands}")
    return misplaced, counts


def report(misplaced: Dict[Tuple[str, str], List[str]]) -> str:
    return "\n".join(
        f"{obj}: {function[:160]}: {insns[:3]} ({len(insns)} instructions)"
        for (obj, function), insns in list(misplaced.items())[:20]
    )


def check(path: Path) -> None:
    misplaced, counts = audit(path)
    assert not misplaced, f"instructions outside their target's functions in {path}:\n{report(misplaced)}"
    # The audit saw real code: the vector targets use their instructions, baseline code is there.
    assert counts[("avx512", "avx512")] > 1000, counts
    assert counts[("avx2", "avx2")] > 1000, counts
    assert counts[("baseline", "baseline")] > 10000, counts


def test_extension_keeps_avx_in_its_targets():
    so = Path(losskit._core.__file__).resolve()
    nm = require_tool("nm", "binutils")
    symbols = subprocess.run([nm, str(so)], capture_output=True, text=True).stdout
    assert "kernels6avx512" in symbols, f"{so} has no symbol table: the audit cannot name its functions"
    check(so)


def test_core_library_keeps_avx_in_its_targets():
    lib = static_library()
    if lib is None:
        pytest.skip("no liblosskit.a beside the extension (a dev build or an installed wheel has one)")
    check(lib)


def test_kernel_objects_define_only_their_targets_code():
    lib = static_library()
    if lib is None:
        pytest.skip("no liblosskit.a beside the extension (a dev build or an installed wheel has one)")
    nm = require_tool("nm", "binutils")
    listing = subprocess.run([nm, "-C", "--defined-only", str(lib)], capture_output=True, text=True, check=True).stdout
    members: List[Tuple[str, List[str]]] = []
    for line in listing.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            members.append((line[:-1], []))
        elif members and re.match(r"^[0-9a-f]+ [TtWw] ", line):
            members[-1][1].append(line.split(" ", 2)[2])
    kernel_members = [(name, fns) for name, fns in members if name.endswith("_kernels.cpp.o")]
    assert len(kernel_members) >= 3 * 5, [name for name, _ in members]
    seen_targets = collections.Counter()
    for name, functions in kernel_members:
        targets = {t for t in LEVELS for f in functions if f"losskit::kernels::{t}::" in f}
        assert len(targets) == 1, f"{name} defines functions of {targets or 'no target'}"
        target = targets.pop()
        seen_targets[target] += 1
        strays = [f for f in functions if f"losskit::kernels::{target}::" not in f]
        assert not strays, f"{name} ({target}) defines functions outside its namespace: {strays[:5]}"
    assert len(set(seen_targets.values())) == 1 and set(seen_targets) == set(LEVELS), seen_targets

    objdump = require_tool("objdump", "binutils")
    headers = subprocess.run([objdump, "-h", str(lib)], capture_output=True, text=True, check=True).stdout
    member = ""
    for line in headers.splitlines():
        if "file format" in line:
            member = line.split(":")[0]
        elif member.endswith("_kernels.cpp.o"):
            assert not re.search(r"\.(init_array|ctors|preinit_array)\b", line), (
                f"{member} has a static initialiser ({line.split()[1]}): it would run on every CPU"
            )
