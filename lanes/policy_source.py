"""The policy file a gateway serves from, reloaded on change without a restart.

Readers take `source.current` once per request and keep that object: a reload swaps the
reference in one assignment, so a request never sees half of an old policy and half of
a new one. A file that fails validation is refused with a logged error and the last
good policy keeps serving. The gateway calls `reload()` on SIGHUP and `poll()` from a
timer; nothing here owns threads or signals.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

from lanes.advice import advice
from lanes.policy_errors import PolicyError
from lanes.policy_load import parse_policy
from lanes.policy_model import Policy

log = logging.getLogger("laneway.policy")


class PolicySource:
    def __init__(self, path: str | Path) -> None:
        """Loads the file now; raises PolicyError when it is bad (a server must not start on it)."""
        self.path = Path(path)
        self._lock = threading.Lock()  # one reload at a time (SIGHUP and the poll timer may race)
        text = self._read()
        self._current = parse_policy(text, str(self.path))
        self._seen = _fingerprint(text)  # last content validated, good or refused
        self._log_advice()

    @property
    def current(self) -> Policy:
        return self._current

    def reload(self) -> bool:
        """Validate the file and swap it in. False (and an error logged) when it was refused."""
        with self._lock:
            try:
                return self._swap(self._read())
            except PolicyError as err:
                log.error("policy reload refused, still serving the last good policy:\n%s", err)
                return False

    def poll(self) -> bool:
        """Reload when the file's content changed since it was last looked at. True if swapped.

        A refused file is reported once, not on every poll, until its content changes.
        """
        with self._lock:
            try:
                text = self._read()
                if _fingerprint(text) == self._seen:
                    return False
                before = self._current
                return self._swap(text) and self._current is not before
            except PolicyError as err:
                log.error("policy reload refused, still serving the last good policy:\n%s", err)
                return False

    def _swap(self, text: str) -> bool:
        self._seen = _fingerprint(text)
        policy = parse_policy(text, str(self.path))
        if policy != self._current:
            self._current = policy  # the one atomic step readers can observe
            log.info("policy reloaded from %s", self.path)
            self._log_advice()
        return True

    def _log_advice(self) -> None:
        for note in advice(self._current):
            log.warning("%s: %s", self.path, note)

    def _read(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise PolicyError(str(self.path), [f"{self.path}: cannot read the file: {err}"]) from None


def _fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
