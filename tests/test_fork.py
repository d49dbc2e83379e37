"""Fork safety: a process forked after losskit ran on several threads computes right answers in the
child, on threads, instead of hanging (GNU libgomp's thread pool does not survive fork; see
cpp/src/common/threads.cpp). Every family runs (tests/data/every_loss.py, 4 threads, inputs past
every threading threshold) in the parent, then in children made by os.fork and by
multiprocessing's fork start method, and in a grandchild; the answers must be bitwise the parent's.

Each scenario runs in its own process group with a timeout, so a regression fails the test
instead of hanging CI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import losskit

DATA = Path(__file__).resolve().parent / "data"
TIMEOUT_S = 120

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

PRELUDE = textwrap.dedent(f"""
    import os, sys, warnings
    import numpy as np
    sys.path.insert(0, {str(DATA)!r})
    warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork() with threads running
    import every_loss
    import losskit

    def results(tmp, name):
        out = os.path.join(tmp, name + ".npz")
        every_loss.run(os.path.join(tmp, "inputs.npz"), out)
        with np.load(out) as d:
            return {{k: d[k] for k in d.files}}

    def same(a, b):
        return a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a)

    def in_child(check):  # runs check() in a forked child; True when it returned True there
        pid = os.fork()
        if pid == 0:
            ok = False
            try:
                ok = check()
            finally:  # never return into the parent's code, whatever check() raised
                sys.stderr.flush()
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) == 0

    tmp = sys.argv[1]
    every_loss.make_inputs(os.path.join(tmp, "inputs.npz"))
    parent = results(tmp, "parent")  # 4 threads: the parent's OpenMP pool now exists
    assert losskit.get_num_threads() == 4
""")


def run_scenario(body: str, tmp_path: Path) -> str:
    package_root = str(
        Path(os.path.abspath(losskit.__file__)).parents[1]
    )  # not resolved: a package of symlinks (the sanitizer job) stays itself
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(body), str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the scenario and every child it forked
        out, err = proc.communicate()
        pytest.fail(f"hung for {TIMEOUT_S} s (a forked child waiting for the parent's threads?)\n{out}\n{err}")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err[-3000:]}"
    return out


def test_os_fork_child_gets_the_parents_answers_on_threads(tmp_path):
    out = run_scenario(
        """
        def child():
            ok = same(results(tmp, "child"), parent) and losskit.get_num_threads() == 4
            return ok and same(results(tmp, "child2"), parent)  # the child's threads are reused
        assert in_child(child)
        assert same(results(tmp, "parent_after"), parent)  # and the parent is unharmed
        print("fork ok")
    """,
        tmp_path,
    )
    assert "fork ok" in out


def test_grandchild_gets_the_parents_answers(tmp_path):
    out = run_scenario(
        """
        def child():
            ok = same(results(tmp, "child"), parent)
            return in_child(lambda: same(results(tmp, "grandchild"), parent)) and ok
        assert in_child(child)
        print("grandchild ok")
    """,
        tmp_path,
    )
    assert "grandchild ok" in out


def test_multiprocessing_fork_pool(tmp_path):
    out = run_scenario(
        """
        import multiprocessing as mp

        def task(i):
            return same(results(tmp, f"worker{i}"), parent), losskit.get_num_threads()

        with mp.get_context("fork").Pool(2) as pool:
            answers = pool.map(task, range(4))
        assert answers == [(True, 4)] * 4, answers
        print("pool ok")
    """,
        tmp_path,
    )
    assert "pool ok" in out


def test_threads_started_in_the_child(tmp_path):
    """Python threads of the child (fresh OpenMP state) and the thread that forked, at once."""
    out = run_scenario(
        """
        import threading
        def child():
            answers = []
            def work(i):
                answers.append(same(results(tmp, f"thread{i}"), parent))
            threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
            for t in threads:
                t.start()
            work(3)
            for t in threads:
                t.join()
            return answers == [True] * 4
        assert in_child(child)
        print("threads ok")
    """,
        tmp_path,
    )
    assert "threads ok" in out
