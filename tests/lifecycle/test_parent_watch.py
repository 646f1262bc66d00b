"""`laneway serve`'s children die with it, even when it is SIGKILLed (workers/parent_watch.py).

A stand-in launcher (a plain Python process) starts a child the way the supervisor does,
the child arms the parent-death signal the way a worker does; then the launcher is killed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from laneway.procs import ROOT

LAUNCHER = """
import os, subprocess, sys, time
from workers.parent_watch import child_env
child = subprocess.Popen([sys.executable, "-c", CHILD], env={**os.environ, **child_env()})
print(child.pid, flush=True)
time.sleep(600)
"""
CHILD = """
import time
from workers.parent_watch import die_with_parent
die_with_parent()
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_child_dies_when_its_launcher_is_killed() -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    launcher = subprocess.Popen([sys.executable, "-c", f"CHILD = {CHILD!r}\n{LAUNCHER}"], env=env,
                                stdout=subprocess.PIPE, text=True)
    try:
        assert launcher.stdout is not None
        child = int(launcher.stdout.readline())
        time.sleep(0.5)  # the child arms its signal right after start
        assert _alive(child)
        launcher.kill()
        launcher.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        print(f"tried: SIGKILL the launcher {launcher.pid}; observed: child {child} alive: {_alive(child)}")
        assert not _alive(child), "the child outlived its SIGKILLed launcher"
    finally:
        launcher.kill()
        launcher.wait(10)
        launcher.stdout.close()  # type: ignore[union-attr]


def test_without_the_launcher_marker_nothing_is_armed(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes

    from workers import parent_watch

    monkeypatch.delenv(parent_watch.PARENT_PID_ENV, raising=False)
    parent_watch.die_with_parent()  # a worker started by hand: no signal, no exit
    signal_on_parent_death = ctypes.c_int(-1)
    assert ctypes.CDLL("libc.so.6", use_errno=True).prctl(2, ctypes.byref(signal_on_parent_death)) == 0  # GET_PDEATHSIG
    assert signal_on_parent_death.value == 0, "nothing may be armed without the launcher's marker"


def test_a_child_whose_launcher_is_already_gone_exits() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LANEWAY_PARENT_PID": str(os.getpid() + 10**6)}
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "exited before this process started" in done.stderr, done.stderr
