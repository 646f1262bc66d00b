"""Request bodies for planned requests: prompt text of the planned length, API shape.

A prompt is `shared prefix + "#RUN-INDEX " + filler`: the prefix is the same text for every
prefixed request of an endpoint (a prefix cache can reuse it), and the run tag and index
right after it make the rest of each prompt unique, so no two requests share more than
intended, not even with the same request of an earlier run against the same server.
Length is `tokens * chars_per_token` characters: exact for byte-level tokenizers,
approximate for others (the usage block the server returns has the real counts).
"""

from __future__ import annotations

import random
import secrets

from laneway.load.workload import PlannedRequest, Workload

_WORDS = ("lane", "batch", "token", "queue", "window", "budget", "worker", "cache", "stream", "label",
          "ticket", "draft", "reply", "code", "review", "night", "summary", "tag")


def _text(seed: str, num_chars: int) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < num_chars:
        w = rng.choice(_WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:num_chars]


_FILLER = _text("filler", 1 << 16)


class PromptMaker:
    def __init__(self, workload: Workload, run_tag: str | None = None) -> None:
        self.workload = workload
        self.run_tag = run_tag if run_tag is not None else secrets.token_hex(3)
        self._prefixes: dict[str, str] = {}

    def prompt(self, req: PlannedRequest) -> str:
        cpt = self.workload.chars_per_token
        num_chars = max(1, round(req.prompt_tokens * cpt))
        prefix = ""
        if req.shared_prefix_tokens:
            full = self._prefix(req.endpoint)
            prefix = full[: round(req.shared_prefix_tokens * cpt)]
        head = f"{prefix}#{self.run_tag}-{req.index} "
        rest = max(0, num_chars - len(head))
        return (head + _repeat(rest))[:max(num_chars, len(head))]

    def body(self, req: PlannedRequest) -> dict:
        e = self.workload.endpoint(req.endpoint)
        api = e.api_of(self.workload.api)
        body: dict = {"max_tokens": req.max_tokens, "temperature": 0}
        if self.workload.ignore_eos:
            body["ignore_eos"] = True
        if self.workload.model is not None:
            body["model"] = self.workload.model
        if api == "chat":
            body["messages"] = [{"role": "user", "content": self.prompt(req)}]
        else:
            body["prompt"] = self.prompt(req)
        return body

    def _prefix(self, endpoint: str) -> str:
        if endpoint not in self._prefixes:
            e = self.workload.endpoint(endpoint)
            assert e.shared_prefix is not None, f"{endpoint} has no shared prefix"
            self._prefixes[endpoint] = _text(f"{self.workload.seed}/{endpoint}/prefix",
                                             round(e.shared_prefix.tokens * self.workload.chars_per_token))
        return self._prefixes[endpoint]


def _repeat(num_chars: int) -> str:
    reps = num_chars // len(_FILLER) + 1
    return (_FILLER * reps)[:num_chars] if reps > 1 else _FILLER[:num_chars]
