"""Hot reload: a good new file is swapped in whole; a bad one is refused and logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lanes import PolicyError
from lanes.policy_source import PolicySource
from tests.lanes.factories import POLICY_YAML, with_change

NEW_WINDOW = with_change("batch_window_ms: 10\n", "batch_window_ms: 20\n")
BROKEN = with_change("batch_window_ms: 10\n", "batch_window_ms: -5\n")


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY_YAML)
    return path


def test_bad_file_at_start_up_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(BROKEN)
    with pytest.raises(PolicyError, match="lanes.streaming.batch_window_ms.min: got -5"):
        PolicySource(path)


def test_reload_swaps_in_a_valid_change(policy_file: Path) -> None:
    source = PolicySource(policy_file)
    old = source.current
    policy_file.write_text(NEW_WINDOW)
    assert source.reload()
    assert source.current.lanes["streaming"].batch_window.max_ms == 20
    assert old.lanes["streaming"].batch_window.max_ms == 10  # readers holding the old one are unaffected


def test_reload_refuses_a_bad_file_and_keeps_serving(policy_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = PolicySource(policy_file)
    good = source.current
    policy_file.write_text(BROKEN)
    with caplog.at_level(logging.ERROR, logger="laneway.policy"):
        assert not source.reload()
    assert source.current is good
    assert "policy reload refused" in caplog.text
    assert f"{policy_file}:12: lanes.streaming.batch_window_ms.min: got -5" in caplog.text


def test_reload_of_a_deleted_file_keeps_serving(policy_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = PolicySource(policy_file)
    good = source.current
    policy_file.unlink()
    with caplog.at_level(logging.ERROR, logger="laneway.policy"):
        assert not source.reload()
        assert not source.poll()
    assert source.current is good
    assert "cannot read the file" in caplog.text


def test_poll_reloads_only_on_change_and_reports_a_bad_file_once(
    policy_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = PolicySource(policy_file)
    first = source.current
    assert not source.poll()  # nothing changed
    assert source.current is first

    policy_file.write_text(BROKEN)
    with caplog.at_level(logging.ERROR, logger="laneway.policy"):
        assert not source.poll()
        assert not source.poll()
    assert caplog.text.count("policy reload refused") == 1
    assert source.current is first

    policy_file.write_text(NEW_WINDOW)
    assert source.poll()
    assert source.current.lanes["streaming"].batch_window.max_ms == 20


def test_comment_only_edit_keeps_the_same_policy_object(policy_file: Path) -> None:
    source = PolicySource(policy_file)
    first = source.current
    policy_file.write_text("# edited\n" + POLICY_YAML)
    assert not source.poll()  # content changed, policy did not: nothing to swap
    assert source.current is first


def test_advice_on_a_loaded_policy_is_logged(tmp_path, caplog) -> None:
    from tests.lanes.factories import POLICY_YAML

    path = tmp_path / "policy.yaml"
    path.write_text(POLICY_YAML[:POLICY_YAML.index("\nrules:")] + POLICY_YAML[POLICY_YAML.index("\ntenants:"):])
    with caplog.at_level("WARNING", logger="laneway.policy"):
        PolicySource(path)
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: lanes.bulk.batch_window_ms: auto, but no endpoint that reaches lane 'bulk' has slo.ttft_p95_ms, "
        "so the window will widen to its max (250 ms) and stay there; a fixed window says the same thing plainly"]
