from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from lanes import cli
from tests.lanes.factories import POLICY_YAML, with_change

DEFAULT = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"


def test_check_ok_prints_a_summary(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY_YAML)
    assert cli.check(path) == 0
    out, err = capsys.readouterr()
    assert out == f"OK: {path}: 4 lanes, 4 endpoints, 2 tenants\n"
    assert err == ""


def test_check_bad_file_prints_problems_to_stderr(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(with_change("max_queue_depth: 64", "max_queue_depth: 0"))
    assert cli.check(path) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{path}:8: lanes.interactive.max_queue_depth: got 0; expected 1 or more\n"


def test_schema_is_json_with_the_lane_fields() -> None:
    schema = json.loads(cli.schema())
    lane = schema["$defs"]["LaneSpec"]
    fields = {
        "kind", "priority", "batch_window_ms", "max_batch_size", "max_queue_depth",
        "max_queue_wait_ms", "capacity_share", "preemptible", "backfill",
    }  # fmt: skip
    assert fields <= set(lane["properties"])
    assert lane["additionalProperties"] is False  # editors flag typos too
    assert "kind" not in lane["required"]  # lanes named after their kind leave it out
    assert "priority" in lane["required"]
    window = lane["properties"]["batch_window_ms"]["anyOf"]
    assert {"type": "number"} in window, "a plain number of ms is a valid window"
    assert set(schema["$defs"]["BatchWindow"]["properties"]) == {"auto", "min", "max"}
    assert schema["properties"]["version"]["const"] == 1
    assert set(schema["$defs"]["TenantSpec"]["properties"]) >= {"keys_sha256", "endpoints", "rpm", "tpm"}
    assert schema["$defs"]["EndpointSpec"]["properties"]["on_redis_unavailable"]["default"] == "open"


def test_hash_key() -> None:
    assert cli.hash_key("sk-demo-acme") == "d4ffc8c0325f7e8e971bb4d7bc9f6a78c97920b5ac57b24380e53b6c7a96bc13"


def test_main_check_returns_worst_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("")
    assert cli.main(["check", str(DEFAULT)]) == 0
    assert cli.main(["check", str(DEFAULT), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out.count("OK: ") == 2
    assert f"{bad}: (top level): got an empty file" in err


def test_main_hash_key_reads_stdin_when_no_argument(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("sk-demo-acme\n"))
    assert cli.main(["hash-key"]) == 0
    assert capsys.readouterr().out.strip() == cli.hash_key("sk-demo-acme")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert cli.main(["hash-key"]) == 2


def test_main_schema_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "Laneway policy"


def test_check_notes_an_auto_window_with_no_budget_to_steer_by(capsys: pytest.CaptureFixture[str],
                                                               tmp_path: Path) -> None:
    # In the test policy, rules can send chat (ttft budget 1000 ms) to bulk: its auto window has a budget.
    path = tmp_path / "p.yaml"
    path.write_text(POLICY_YAML)
    assert cli.check(path) == 0
    assert "note:" not in capsys.readouterr().out
    # Without the rules, only nightly-labeling (no TTFT budget) reaches bulk.
    path.write_text(POLICY_YAML[:POLICY_YAML.index("\nrules:")] + POLICY_YAML[POLICY_YAML.index("\ntenants:"):])
    assert cli.check(path) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("OK: ")
    assert out[1:] == [f"note: {path}: lanes.bulk.batch_window_ms: auto, but no endpoint that reaches lane 'bulk' "
                       "has slo.ttft_p95_ms, so the window will widen to its max (250 ms) and stay there; a fixed "
                       "window says the same thing plainly"]


def test_check_warns_about_a_tenant_holding_the_public_demo_key(capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY_YAML.replace(cli.hash_key("sk-test-bots"), cli.hash_key("sk-demo-local")))
    assert cli.check(path) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "demo key" in line]
    assert notes and "tenants.bots.keys_sha256" in notes[0] and "WARNING" in notes[0]
