"""Grammar-mask time per token on this machine: llguidance (what Laneway uses) and, when it is
installed, xgrammar. Used for docs/structured-outputs.md.

    python scripts/bench_grammar.py [--vocab 32000] [--tokens 2000]

Vocabularies: the built-in byte-level one (320 ids) and a byte-level BPE trained here on
Python's own sources (no download). Each engine walks random legal tokens through a JSON
schema and through any JSON object, and we time the mask for every token (the work the
sampler waits for) and the per-request compile.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import sysconfig
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "proto")]

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["name", "age", "tags", "address"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                         "tags": {"type": "array", "items": {"type": "string"}},
                         "address": {"type": "object", "required": ["city", "zip"], "additionalProperties": False,
                                     "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}}}}


def train_bpe(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    files = sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py"))[:1500]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator((f.read_text(errors="ignore") for f in files), trainer)
    return tok


def bench_llguidance(tokenizer, vocab_size: int, eos: int, schema: str, num_tokens: int, rng: random.Random):
    from workers.grammar.compiler import GrammarCompiler
    from workers.grammar.constraint import OutputConstraint

    started = time.perf_counter()
    compiler = GrammarCompiler.for_tokenizer(tokenizer, vocab_size, (eos,))
    setup_s = time.perf_counter() - started
    bitmask = torch.zeros(1, (vocab_size + 31) // 32, dtype=torch.int32)
    row = bitmask[0]
    mask_s, compile_s = [], []
    while len(mask_s) < num_tokens:
        started = time.perf_counter()
        constraint = OutputConstraint("json_schema", schema) if schema else OutputConstraint("json_object")
        matcher = compiler.compile(constraint)
        compile_s.append(time.perf_counter() - started)
        for _ in range(200):
            started = time.perf_counter()
            matcher.fill_bitmask(row.data_ptr(), row.numel() * 4)
            mask_s.append(time.perf_counter() - started)
            allowed = _allowed(row, vocab_size)
            token = rng.choice(allowed)
            if not matcher.accept(token) or matcher.is_finished or token == eos:
                break
    return setup_s, compile_s, mask_s


def bench_xgrammar(tokenizer, vocab_size: int, eos: int, schema: str, num_tokens: int, rng: random.Random):
    import xgrammar as xgr
    from transformers import PreTrainedTokenizerFast

    started = time.perf_counter()
    hf = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="</s>")
    info = xgr.TokenizerInfo.from_huggingface(hf, vocab_size=vocab_size, stop_token_ids=[eos])
    compiler = xgr.GrammarCompiler(info, max_threads=1, cache_enabled=False)
    setup_s = time.perf_counter() - started
    bitmask = xgr.allocate_token_bitmask(1, vocab_size)
    mask_s, compile_s = [], []
    while len(mask_s) < num_tokens:
        started = time.perf_counter()
        compiled = (compiler.compile_json_schema(schema, any_whitespace=False) if schema
                    else compiler.compile_builtin_json_grammar())
        matcher = xgr.GrammarMatcher(compiled)
        compile_s.append(time.perf_counter() - started)
        for _ in range(200):
            started = time.perf_counter()
            matcher.fill_next_token_bitmask(bitmask)
            mask_s.append(time.perf_counter() - started)
            token = rng.choice(_allowed(bitmask[0], vocab_size))
            if not matcher.accept_token(token) or matcher.is_terminated():
                break
    return setup_s, compile_s, mask_s


def _allowed(row: torch.Tensor, vocab_size: int) -> list[int]:
    bits = (row.unsqueeze(-1) >> torch.arange(32, dtype=torch.int32)) & 1
    return bits.flatten()[:vocab_size].nonzero().flatten().tolist()


def _report(engine: str, vocab: str, grammar: str, setup_s: float, compile_s: list[float], mask_s: list[float]) -> None:
    q = statistics.quantiles(mask_s, n=100)
    print(f"| {engine} | {vocab} | {grammar} | {statistics.median(mask_s) * 1e6:.0f} | "
          f"{statistics.fmean(mask_s) * 1e6:.0f} | {q[98] * 1e6:.0f} | "
          f"{statistics.median(compile_s) * 1e3:.2f} | {setup_s * 1e3:.0f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--tokens", type=int, default=2000)
    a = p.parse_args()
    from workers.tokenizer import ByteTokenizer, HFTokenizer

    bpe = train_bpe(a.vocab)
    hf_tokenizer = HFTokenizer(bpe, {"bos_token": "<s>", "eos_token": "</s>"}, None)
    print("| engine | vocabulary | grammar | mask p50 (us) | mask mean (us) | mask p99 (us) | compile p50 (ms) "
          "| vocabulary setup (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for grammar, schema in (("JSON schema", json.dumps(SCHEMA)), ("json_object", "")):
        _report("llguidance", "byte (320)", grammar,
                *bench_llguidance(ByteTokenizer(), 320, 257, schema, a.tokens, random.Random(0)))
        _report("llguidance", f"BPE ({bpe.get_vocab_size()})", grammar,
                *bench_llguidance(hf_tokenizer, bpe.get_vocab_size(), 1, schema, a.tokens, random.Random(0)))
        try:
            import xgrammar  # noqa: F401
        except ImportError:
            continue
        _report("xgrammar", f"BPE ({bpe.get_vocab_size()})", grammar,
                *bench_xgrammar(bpe, bpe.get_vocab_size(), 1, schema, a.tokens, random.Random(0)))


if __name__ == "__main__":
    main()
