"""The served model's names and prompt token estimates, from the workers' reports and the config."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.model_catalog import BYTES_PER_TOKEN_GUESS, ModelCatalog
from gateway.worker_client import ModelInfo


@dataclass
class FakeWorker:
    info: ModelInfo | None = None


@dataclass
class FakeRoster:
    workers: list[FakeWorker] = field(default_factory=list)


def _info(model: str, vocab_size: int = 32_000) -> ModelInfo:
    return ModelInfo(model=model, max_model_len=2048, block_size=16, vocab_size=vocab_size, worker_id=model)


def test_the_first_worker_that_reported_names_the_model() -> None:
    roster = FakeRoster([FakeWorker(), FakeWorker(_info("llama-a")), FakeWorker(_info("llama-b"))])
    assert ModelCatalog(roster, "configured").model_name == "llama-a"


def test_before_any_report_the_configured_name_then_laneway() -> None:
    roster = FakeRoster([FakeWorker()])
    assert ModelCatalog(roster, "configured").model_name == "configured"
    assert ModelCatalog(roster).model_name == "laneway"


def test_a_report_arriving_later_is_seen_at_once() -> None:
    worker = FakeWorker()
    catalog = ModelCatalog(FakeRoster([worker]), "configured")
    worker.info = _info("tiny")
    assert catalog.model_name == "tiny"


def test_clients_may_name_the_model_the_endpoint_or_laneway() -> None:
    catalog = ModelCatalog(FakeRoster([FakeWorker(_info("tiny"))]))
    assert catalog.model_names("inline") == ["tiny", "inline", "laneway"]  # the served model first
    assert ModelCatalog(FakeRoster()).model_names("chat") == ["laneway", "chat"]  # served is "laneway": once


def test_byte_level_models_count_bytes_exactly_others_are_guessed() -> None:
    byte_level = ModelCatalog(FakeRoster([FakeWorker(_info("tiny", vocab_size=259))]))
    subword = ModelCatalog(FakeRoster([FakeWorker(_info("llama", vocab_size=32_000))]))
    unknown = ModelCatalog(FakeRoster([FakeWorker()]))
    assert byte_level.estimate_tokens(400) == 400
    assert subword.estimate_tokens(400) == int(400 / BYTES_PER_TOKEN_GUESS) == unknown.estimate_tokens(400)
    assert subword.estimate_tokens(1) == 1  # never zero: admission counts every prompt
