"""The mdptheory command: list, verify (table, json, markdown, report, exit code)."""

import json

import pytest

from mdptheory import cli
from mdptheory.studies import rb_bias


@pytest.fixture
def tiny_rb_bias(monkeypatch):
  """rb_bias with a tiny quick config, so the CLI tests exercise the plumbing, not the study."""
  monkeypatch.setattr(rb_bias.Config, "quick", classmethod(
      lambda cls: cls(num_states=6, num_actions=3, branching=2, gammas=(0.9,), taus=(0.1,), num_seeds=1)))


def test_list_names_studies_claims_and_envs(capsys):
  assert cli.main(["list"]) == 0
  out = capsys.readouterr().out
  assert "rb_contraction" in out and "RB-1" in out and "garnet" in out


def test_verify_json_is_machine_readable_and_writes_the_report(capsys, tmp_path, tiny_rb_bias):
  code = cli.main(["verify", "--quick", "--format", "json", "--study", "rb_bias", "--figures", str(tmp_path)])
  out = capsys.readouterr().out
  rows = json.loads(out)
  assert code == 0 and [r["id"] for r in rows] == ["RB-3"] and rows[0]["passed"] is True
  for ext in ("png", "pdf", "csv"):
    assert (tmp_path / f"rb_bias.{ext}").stat().st_size > 0
  assert "RB-3" in (tmp_path / "REPORT.md").read_text()


def test_verify_exits_non_zero_when_a_claim_fails(monkeypatch, tmp_path, capsys, tiny_rb_bias):
  from mdptheory.claims import ClaimResult
  monkeypatch.setattr(rb_bias, "check", lambda df: [ClaimResult.compare("RB-3", 2.0, 1.0)])
  assert cli.main(["verify", "--study", "rb_bias", "--figures", str(tmp_path)]) == 1
  assert "FAIL" in capsys.readouterr().out
