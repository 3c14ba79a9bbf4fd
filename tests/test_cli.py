"""The mdptheory command: list, run (resumable), plot from stored results, verify (table, json, report, exit codes)."""

import json

import pytest

from mdptheory import cli
from mdptheory.studies import rb_bias


@pytest.fixture
def tiny_rb_bias(monkeypatch):
  """rb_bias with a tiny quick sweep, so the CLI tests exercise the plumbing, not the study."""
  monkeypatch.setattr(rb_bias.Config, "quick", classmethod(
      lambda cls: cls(num_states=6, num_actions=3, branching=2)))
  monkeypatch.setattr(rb_bias, "QUICK_GRID", {"regularizer": ("entropy",), "gamma": (0.9,), "tau": (0.1, 1.0)})
  monkeypatch.setattr(rb_bias, "QUICK_SEEDS", 2)


def test_list_names_studies_claims_and_envs(capsys):
  assert cli.main(["list"]) == 0
  out = capsys.readouterr().out
  assert "rb_contraction" in out and "RB-1" in out and "garnet" in out


def test_verify_json_is_machine_readable_and_writes_the_report(capsys, tmp_path, tiny_rb_bias):
  code = cli.main(["verify", "--quick", "--format", "json", "--study", "rb_bias", "--figures", str(tmp_path / "fig"),
                   "--out", str(tmp_path / "res"), "--no-progress"])
  out = capsys.readouterr().out
  rows = json.loads(out)
  assert code == 0 and [r["id"] for r in rows] == ["RB-3"] and rows[0]["passed"] is True
  for ext in ("png", "pdf", "csv"):
    assert (tmp_path / "fig" / f"rb_bias.{ext}").stat().st_size > 0
  assert "RB-3" in (tmp_path / "fig" / "REPORT.md").read_text()


def test_run_resumes_and_plot_redraws_from_stored_results(capsys, tmp_path, tiny_rb_bias):
  args = ["run", "rb_bias", "--quick", "--out", str(tmp_path / "res"), "--figures", str(tmp_path / "fig"),
          "--no-progress", "--set", "tau=0.1,0.5,1.0"]
  assert cli.main(args) == 0
  assert "computed 6, reused 0" in capsys.readouterr().err
  assert cli.main(args) == 0
  assert "computed 0, reused 6" in capsys.readouterr().err
  (tmp_path / "fig" / "rb_bias.png").unlink()
  assert cli.main(["plot", "rb_bias", "--quick", "--out", str(tmp_path / "res"), "--figures",
                   str(tmp_path / "fig"), "--set", "tau=0.1,0.5,1.0"]) == 0
  assert (tmp_path / "fig" / "rb_bias.png").stat().st_size > 0


@pytest.mark.parametrize("argv,fragment", [
    (["run", "no_such_study", "--quick"], "rb_bias"),
    (["run", "rb_bias", "--quick", "--set", "bogus=1"], "valid"),
    (["run", "rb_bias", "--quick", "--set", "tau=abc"], "tau"),
    (["run", "rb_bias", "--quick", "--set", "tau="], "tau"),
    (["plot", "rb_bias", "--quick"], "run"),
])
def test_bad_requests_get_a_clear_error_and_exit_code_2(argv, fragment, capsys, tmp_path, tiny_rb_bias):
  code = cli.main(argv + ["--out", str(tmp_path / "empty"), "--figures", str(tmp_path / "fig")])
  err = capsys.readouterr().err
  assert code == 2 and fragment in err, err


def test_verify_exits_non_zero_when_a_claim_fails(monkeypatch, tmp_path, capsys, tiny_rb_bias):
  from mdptheory.claims import ClaimResult
  monkeypatch.setattr(rb_bias, "check", lambda df: [ClaimResult.compare("RB-3", 2.0, 1.0)])
  assert cli.main(["verify", "--study", "rb_bias", "--figures", str(tmp_path), "--out", str(tmp_path / "res"),
                   "--no-progress"]) == 1
  assert "FAIL" in capsys.readouterr().out


def test_the_entry_points_ask_xla_for_single_threaded_eigen_but_keep_user_flags(monkeypatch):
  """The CLI and the tests avoid XLA CPU's multi-threaded Eigen pool, which can wedge on large vmaps."""
  import os

  from mdptheory._xla import SINGLE_THREADED_EIGEN, avoid_cpu_pool_deadlock
  monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/dev/null")
  avoid_cpu_pool_deadlock()
  assert os.environ["XLA_FLAGS"] == f"--xla_dump_to=/dev/null {SINGLE_THREADED_EIGEN}"
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true")
  avoid_cpu_pool_deadlock()  # a user's explicit choice wins
  assert os.environ["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=true"


def test_quick_figures_go_to_their_own_folder_unless_one_is_given():
  import argparse
  from pathlib import Path
  assert cli._figures_dir(argparse.Namespace(figures=None, quick=True)) == Path("figures/quick")
  assert cli._figures_dir(argparse.Namespace(figures=None, quick=False)) == Path("figures")
  assert cli._figures_dir(argparse.Namespace(figures="out", quick=True)) == Path("out")
