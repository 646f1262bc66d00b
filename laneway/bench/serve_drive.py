"""The client side of `laneway bench serve`: closed-loop streams over HTTP or straight over gRPC.

`concurrency` streams each send their next request as soon as their last one ended, until
the level's requests are used up. Every request is the same shape: the same prompt for every
system (token ids where the server takes them; the text of those ids for llama.cpp's server,
which takes only text), greedy, `ignore_eos` (or what a server has instead), a fixed number
of output tokens. A request that yields another number of tokens counts as failed: a row is
only comparable if every system generated what was asked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from laneway.bench.serve_stats import StreamSample

SendFn = Callable[[int], Awaitable[StreamSample | str]]  # request index -> sample, or why it failed


# A prompt cycles letter, digit, punctuation: every character is a pre-token of its own under
# GPT-2-style regexes (HF's ByteLevel, llama.cpp's "gpt-2"), so no BPE merge can join two and
# the text is exactly one token per character in every tokenizer that reads it. No quotes
# (contractions) and no spaces.
_CLASSES = ("abcdefghijklmnopqrstuvwxyz", "0123456789", "!#$%&()*+,-./:;<=>?@[]^_{|}~")


@dataclass(frozen=True)
class Shape:
    prompt_len: int = 32
    output_len: int = 128
    encode: Callable[[str], list[int]] | None = field(default=None, compare=False)  # the served tokenizer

    def prompt_text(self, index: int) -> str:
        # Distinct per request (no prefix-cache hits between requests).
        return "".join(_CLASSES[i % 3][(index * 7 + i * 13) % len(_CLASSES[i % 3])] for i in range(self.prompt_len))

    def prompt_ids(self, index: int) -> list[int]:
        if self.encode is None:
            raise ValueError("token-id prompts need the served model's tokenizer (Shape.encode)")
        ids = self.encode(self.prompt_text(index))
        if len(ids) != self.prompt_len:  # the tokenizer merges what this prompt assumes it cannot
            raise ValueError(f"prompt {index} is {len(ids)} tokens in this tokenizer, not {self.prompt_len}")
        return ids


def _gaps(times: Sequence[float]) -> tuple[float, ...]:
    return tuple(b - a for a, b in zip(times, times[1:]))


def hf_encoder(hf_dir: str) -> Callable[[str], list[int]]:
    """The tokenizer.json of an HF directory, without special tokens (every system gets no BOS)."""
    from pathlib import Path

    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(hf_dir) / "tokenizer.json"))
    return lambda text: tokenizer.encode(text, add_special_tokens=False).ids


async def run_level(send: SendFn, concurrency: int, num_requests: int
                    ) -> tuple[list[StreamSample], dict[str, int], float]:
    """(samples, failures by reason, wall seconds) for `num_requests` requests over `concurrency` streams."""
    next_index = iter(range(num_requests))
    samples: list[StreamSample] = []
    failed: dict[str, int] = {}

    async def stream() -> None:
        for index in next_index:  # shared iterator: each request goes to exactly one stream
            sample = await send(index)
            if isinstance(sample, str):
                failed[sample] = failed.get(sample, 0) + 1
            else:
                samples.append(sample)

    started = time.perf_counter()
    await asyncio.gather(*(stream() for _ in range(concurrency)))
    return samples, failed, time.perf_counter() - started


@dataclass(frozen=True)
class Dialect:
    """How one kind of OpenAI-compatible server is asked for the bench's request."""

    text_prompt: bool = False  # the server takes only text prompts
    extra: Mapping[str, object] = field(default_factory=dict)  # body fields beside the common ones
    usage_in_stream: bool = True  # the stream ends with usage (else tokens are counted as chunks)


OPENAI = Dialect(extra={"ignore_eos": True})


def llamacpp_dialect(eos_token_id: int, non_ascii_byte_ids: Sequence[int] = ()) -> Dialect:
    # llama-cpp-python's server: text prompts only; repeat_penalty defaults to 1.1 (not greedy);
    # no ignore_eos, so EOS is biased away. Its stream has no usage. And it holds back a token
    # that may start a multi-byte UTF-8 character, skipping its max_tokens check while it does:
    # a random model that emits such bytes streams in bursts and overruns max_tokens (1000
    # tokens for 128 seen). So the byte tokens 0x80-0xFF are biased away too: the output is
    # ASCII, one chunk per token; the forward pass, the work measured, is the same.
    bias = {str(i): -1e9 for i in (eos_token_id, *non_ascii_byte_ids)}
    return Dialect(text_prompt=True, usage_in_stream=False, extra={"repeat_penalty": 1.0, "logit_bias": bias})


def non_ascii_byte_ids(hf_dir: str) -> list[int]:
    """The ids of the single-byte tokens 0x80-0xFF of a byte-level BPE tokenizer.json."""
    import json
    from pathlib import Path

    vocab = json.loads((Path(hf_dir) / "tokenizer.json").read_text())["model"]["vocab"]
    chars = _bytes_to_unicode()
    return [vocab[chars[b]] for b in range(0x80, 0x100) if chars[b] in vocab]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet (what HF's ByteLevel pre-tokenizer maps each byte to)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    out, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in out:
            out[b] = chr(256 + extra)
            extra += 1
    return out


def request_body(model: str, shape: Shape, index: int, dialect: Dialect) -> dict:
    prompt: str | list[int] = shape.prompt_text(index) if dialect.text_prompt else shape.prompt_ids(index)
    return {"model": model, "prompt": prompt, "max_tokens": shape.output_len, "temperature": 0.0,
            **dialect.extra}


def token_count_problem(tokens: int, shape: Shape) -> str | None:
    """Why a finished request does not count: it generated another number of tokens than asked."""
    return None if tokens == shape.output_len else f"{tokens} of {shape.output_len} tokens"


def http_sender(pool, model: str, shape: Shape, dialect: Dialect = OPENAI) -> SendFn:
    """Streaming /v1/completions through any OpenAI-compatible server (the lean HTTP/1.1 pool)."""
    from laneway.load.client import send_request_fast

    async def send(index: int) -> StreamSample | str:
        body = request_body(model, shape, index, dialect)
        res = await send_request_fast(pool, "/v1/completions", body, "bench", 0.0, 0.0)
        if not res.ok or not res.token_times:
            return f"HTTP {res.status}" + (f" {res.reject_reason}" if res.reject_reason else "")
        if dialect.usage_in_stream:
            if not res.output_tokens:
                return "no usage in stream"
            if problem := token_count_problem(res.output_tokens, shape):
                return problem
            tokens = res.output_tokens
        else:  # one chunk per token (ASCII output), plus at most a last one that only finishes
            chunks = len(res.token_times)
            if res.finish_reason != "length" or chunks not in (shape.output_len, shape.output_len + 1):
                return f"{chunks} chunks, finish {res.finish_reason}, for {shape.output_len} tokens"
            tokens = shape.output_len
        return StreamSample(ttft_s=res.token_times[0], first_token_s=res.token_times[0],
                            last_token_s=res.token_times[-1], output_tokens=tokens, gaps_s=_gaps(res.token_times))

    return send


async def check_generation(pool, model: str, shape: Shape, dialect: Dialect) -> str | None:
    """One unstreamed request: does the server read a prompt of `prompt_len` tokens and generate
    exactly `output_len`? Returns what is wrong, or None."""
    import json

    body = {**request_body(model, shape, 0, dialect), "stream": False}
    r = await pool.post("/v1/completions", json.dumps(body).encode(), None)
    text = (await r.read()).decode(errors="replace")
    if r.status != 200:
        return f"HTTP {r.status}: {text[:200]}"
    return usage_problem(json.loads(text).get("usage") or {}, shape)


def usage_problem(usage: Mapping[str, int], shape: Shape) -> str | None:
    prompt = usage.get("prompt_tokens")
    if prompt is not None and prompt != shape.prompt_len:
        return f"prompt read as {prompt} tokens, not {shape.prompt_len}"
    return token_count_problem(usage.get("completion_tokens", 0), shape)


def grpc_sender(stub, shape: Shape) -> SendFn:
    """Generate straight on a worker: what the gateway adds is the difference to http_sender."""
    import grpc

    from laneway_proto import worker_pb2 as pb

    async def send(index: int) -> StreamSample | str:
        req = pb.GenerateRequest(request_id=f"bench-{time.monotonic_ns()}-{index}",
                                 token_ids=pb.TokenIds(ids=shape.prompt_ids(index)),
                                 sampling=pb.SamplingParams(max_tokens=shape.output_len, ignore_eos=True))
        sent = time.perf_counter()
        times: list[float] = []
        tokens = 0
        try:
            async for chunk in stub.Generate(req, timeout=600):
                if chunk.token_ids:
                    times.append(time.perf_counter() - sent)
                    tokens += len(chunk.token_ids)
        except grpc.aio.AioRpcError as exc:
            return f"gRPC {exc.code().name}"
        if not times:
            return "no tokens"
        if problem := token_count_problem(tokens, shape):
            return problem
        return StreamSample(ttft_s=times[0], first_token_s=times[0], last_token_s=times[-1], output_tokens=tokens,
                            gaps_s=_gaps(times))

    return send


MakeSend = Callable[[], tuple[SendFn, Callable[[], object]]]  # a path's sender and its close, made on demand


def http_path(base: str, model: str, shape: Shape, dialect: Dialect = OPENAI) -> MakeSend:
    """Streaming completions at `base` (a gateway or any OpenAI-compatible server)."""
    def make() -> tuple[SendFn, Callable[[], object]]:
        from laneway.load.http1 import Http1Pool

        pool = Http1Pool(base, connect_timeout_s=30)
        return http_sender(pool, model, shape, dialect), pool.close
    return make


def grpc_path(address: str, shape: Shape) -> MakeSend:
    """Generate straight on the worker at `address`."""
    def make() -> tuple[SendFn, Callable[[], object]]:
        import grpc

        from laneway_proto import worker_pb2_grpc as pb_grpc

        channel = grpc.aio.insecure_channel(address)
        return grpc_sender(pb_grpc.WorkerStub(channel), shape), channel.close
    return make


async def close_sender(close: Callable[[], object]) -> None:
    """A sender's close, sync or async."""
    res = close()
    if asyncio.iscoroutine(res):
        await res
