"""bench serve pauses the systems not under test: real processes, their states read from /proc."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from laneway.bench.pausing import Families
from laneway.procs import Proc


def _state(proc: Proc) -> str:
    assert proc.popen is not None
    with open(f"/proc/{proc.popen.pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2]


def _until_state(proc: Proc, want: str) -> str:
    deadline = time.monotonic() + 10
    while (got := _state(proc)) != want and time.monotonic() < deadline:
        time.sleep(0.01)
    return got


def test_only_the_family_under_test_runs_and_all_resume(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    a, b1, b2 = (Proc(n, sleeper, 0, tmp_path / f"{n}.log") for n in ("a", "b1", "b2"))
    families = Families()
    families.start("a", a)
    families.start("b", b1)
    families.start("b", b2)
    try:
        assert families.running is None
        families.only("a")
        assert families.running == "a"
        assert _until_state(b1, "T") == "T" and _until_state(b2, "T") == "T"  # stopped
        assert _state(a) != "T"
        families.only("b")
        assert _until_state(a, "T") == "T"
        assert _until_state(b1, "S") == "S" and _until_state(b2, "S") == "S"  # sleeping again, not stopped
        families.only(None)
        assert families.running is None
        assert all(_until_state(p, "T") == "T" for p in (a, b1, b2))
        families.resume_all()
        assert all(_until_state(p, "S") == "S" for p in (a, b1, b2))
        families.only("a")  # stop_all stops paused processes too
    finally:
        families.stop_all()
    assert all(p.popen is not None and p.popen.poll() is not None for p in (a, b1, b2))
