"""`laneway bench engine` pieces on the tiny preset: the curve, both offline runs, the report."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workers.bench.decode_curve import measure_decode_curve
from workers.bench.hf_baseline import generate_batch, hf_model, hf_static_batches
from workers.bench.offline import laneway_offline
from workers.bench.report import END, START, render_markdown, write_section
from workers.bench.result import EngineBenchResult, Machine, OfflineComparison
from workers.bench.setup import kv_bytes_per_token, make_engine, weight_bytes
from workers.bench.workload import mixed_workload
from workers.engine.engine import drain
from workers.engine.sequence import SamplingParams, Sequence
from workers.models.loader import load_model


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", dtype="float32")


def test_decode_curve_runs_pure_decode_steps(tiny):
    points = measure_decode_curve(*tiny, batch_sizes=[1, 3], context=8, num_steps=3)
    assert [p.batch_size for p in points] == [1, 3]
    for p in points:
        assert p.step_ms >= p.forward_ms > 0
        assert 8 <= p.mean_context < 20
        assert p.bytes_per_step > weight_bytes(tiny[0])
        assert p.tokens_per_s == pytest.approx(p.batch_size / (p.step_ms / 1e3))


def test_hf_baseline_has_the_same_weights(tiny):
    """Greedy tokens of transformers generate equal the engine's: same model, same math."""
    model, config, tokenizer = tiny
    hf = hf_model("tiny", model, config)
    prompts = [[5, 9, 200, 31, 7], [100, 3]]
    engine = make_engine(model, config, tokenizer, num_tokens=256, max_num_seqs=4)
    seqs = [Sequence(f"s{i}", list(p), SamplingParams(max_tokens=6, ignore_eos=True)) for i, p in enumerate(prompts)]
    drain(engine, seqs)
    with torch.inference_mode():
        out = generate_batch(hf, prompts, 6, pad_id=0)  # left-padded batch of two
    for row, seq in enumerate(seqs):
        assert out[row, -6:].tolist() == seq.output_token_ids


def test_offline_runs_count_requested_tokens(tiny):
    model, config, tokenizer = tiny
    requests = mixed_workload(6, (3, 20), (1, 9), config.vocab_size, seed=1)
    ours = laneway_offline(model, config, tokenizer, requests, max_num_seqs=4, max_num_batched_tokens=32)
    theirs = hf_static_batches(hf_model("tiny", model, config), requests, batch_size=4, pad_id=0)
    wanted = sum(r.output_len for r in requests)
    assert ours.output_tokens == theirs.output_tokens == wanted
    assert ours.tokens_per_s > 0 and theirs.tokens_per_s > 0


def test_report_rewrites_only_its_own_section(tiny, tmp_path: Path):
    model, config, _ = tiny
    points = measure_decode_curve(*tiny, batch_sizes=[1, 2], context=8, num_steps=1)
    result = EngineBenchResult(
        command="laneway bench engine --model tiny", model="tiny", dtype="float32",
        machine=Machine("cpu", 2, 2, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), torch.__version__),
        bandwidth_gbps=10.0, bandwidth_samples=(9.0, 10.0), weight_bytes=weight_bytes(model),
        kv_bytes_per_token=kv_bytes_per_token(config, torch.float32), context=8, decode=points,
        hf_decode_step_ms=5.0, offline=None,
    )
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Lanes\nkeep me\n")
    write_section(doc, render_markdown(result, None))
    write_section(doc, render_markdown(result, None))  # a rerun replaces, never appends
    text = doc.read_text()
    assert text.count(START) == text.count(END) == 1
    assert "keep me" in text and "laneway bench engine --model tiny" in text
    assert "| 2 |" in text and "HF generate" in text
    assert result.to_json()["decode"][0]["mbu"] == pytest.approx(result.mbu(points[0]))


def test_offline_ratio():
    from workers.bench.offline import ThroughputResult

    o = OfflineComparison(4, (1, 2), (1, 2), 0, ThroughputResult(1.0, 100, 10), 4, ThroughputResult(4.0, 100, 10), 2)
    assert o.ratio == pytest.approx(4.0)
