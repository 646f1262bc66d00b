"""Workers started by `laneway serve` die with it, even when the launcher itself is SIGKILLed.

The launcher puts child_env() in the worker's environment; the worker (workers/main.py)
calls die_with_parent() as it starts. Standard library only, so the CLI imports it
without loading anything of the worker's (torch).

The child arranges it, right after exec (Linux PR_SET_PDEATHSIG): the launcher cannot do
it in a preexec_fn, because that runs Python between fork and exec, and by the time a
crashed worker is restarted the launcher's gRPC threads may hold locks the child then
trips over (a restarted worker died of SIGSEGV that way).
"""

from __future__ import annotations

import ctypes
import os
import signal

PARENT_PID_ENV = "LANEWAY_PARENT_PID"
PR_SET_PDEATHSIG = 1


def child_env() -> dict[str, str]:
    """Environment for a child that must not outlive this process."""
    return {PARENT_PID_ENV: str(os.getpid())}


def die_with_parent() -> None:
    """In a child started with child_env(): SIGTERM when the parent dies; exit now if it already has.

    Linux sends the signal when the parent *thread* that forked exits, so a launcher must fork
    from a thread that lives as long as it does (the main thread, or its supervisor thread)."""
    parent = os.environ.pop(PARENT_PID_ENV, None)  # not inherited by this child's own children
    if parent is None:
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        return  # not Linux: the launcher's own shutdown still stops its children
    if os.getppid() != int(parent):
        raise SystemExit(f"the launcher (pid {parent}) exited before this process started")
