"""The command line as a front door: user errors print the library's message and exit 2."""
from __future__ import annotations

import pytest

from koopman_lib import FitError
from koopman_repro import cli
from koopman_lib.data import DataError


def test_bad_settings_exit_2_with_the_message_and_no_traceback(capsys):
    assert cli.main(["reproduce", "perceptron", "--set", "no_equals_sign"]) == 2
    err = capsys.readouterr().err
    assert "--set expects key=value" in err and "Traceback" not in err
    assert cli.main(["reproduce", "perceptron", "--set", "not_a_field=1"]) == 2
    assert "unknown config field(s) ['not_a_field']" in capsys.readouterr().err


def test_profile_is_a_choice(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["reproduce", "perceptron", "--profile", "nope"])
    assert exit_.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_profile_full_only_for_an_experiment_that_has_it(monkeypatch, capsys, tmp_path):
    ran = []
    monkeypatch.setattr("koopman_repro.experiments.reproduce", lambda *a, **k: ran.append(a) or {})
    assert cli.main(["reproduce", "perceptron", "--profile", "full", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "profile 'full'" in err and "--profile ci or --profile paper" in err and "Traceback" not in err
    assert not ran
    assert cli.main(["reproduce", "beyond", "--profile", "full", "--out", str(tmp_path)]) == 0
    assert ran == [("beyond", "full", tmp_path)]


@pytest.mark.parametrize("error", [FitError("the recording holds 3 of 10 snapshots; finish t1..t2 first"),
                                   DataError("file is truncated; delete it and set KOOPMAN_DATA_DIR")])
def test_library_errors_during_a_run_exit_2(monkeypatch, capsys, tmp_path, error):
    def fail(*a, **k):
        raise error
    monkeypatch.setattr("koopman_repro.experiments.reproduce", fail)
    assert cli.main(["reproduce", "perceptron", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(error) in err and "Traceback" not in err


def test_a_bug_is_not_disguised_as_a_user_error(monkeypatch, tmp_path):
    def bug(*a, **k):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr("koopman_repro.experiments.reproduce", bug)
    with pytest.raises(ZeroDivisionError):
        cli.main(["reproduce", "perceptron", "--out", str(tmp_path)])


def _actions(parser):
    """Every (parser, action) of the ``koopman`` parser and its subcommands."""
    import argparse
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out += _actions(sub)
        else:
            out.append((parser.prog, action))
    return out


def _helps(capsys) -> dict[str, str]:
    out = {}
    for args in ([], ["reproduce"], ["book"], ["bench"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main([*args, "--help"])
        assert exit_.value.code == 0
        out[" ".join(args) or "koopman"] = capsys.readouterr().out
    return out


def test_every_option_has_help():
    actions = _actions(cli.parser())
    assert {a.dest for _, a in actions} >= {"experiment", "profile", "out", "seed", "set", "results", "only", "no_html"}
    missing = [(prog, a.dest) for prog, a in actions if not a.help or a.help == "==SUPPRESS=="]
    assert not missing, f"options without help: {missing}"


def test_help_is_plain_text(capsys):
    helps = _helps(capsys)
    for name, text in helps.items():
        for markup in ("``", ":func:", ":mod:", ":class:", ":data:", ".. "):
            assert markup not in text, f"reST markup {markup!r} in the help of {name}"
    top = helps["koopman"]
    assert "Examples:" in top and "koopman reproduce mnist --profile paper" in top
    assert "--seed" in helps["reproduce"] and "--out" in helps["reproduce"] and "--set" in helps["reproduce"]


def test_help_gives_the_run_times_of_the_saved_runs(capsys):
    reproduce = _helps(capsys)["reproduce"]
    for profile in cli.REPRODUCE_PROFILES:
        walls = cli.saved_wall_seconds(profile)
        line = next(line for line in reproduce.splitlines() if line.strip().startswith(f"{profile}:"))
        if walls:
            assert all(f"{name} {cli._duration(w)}" in line for name, w in walls.items()), line
        else:
            assert "see README" in line
    assert "An MNIST paper run takes" in reproduce


def test_mnist_line_says_over_an_hour_from_the_saved_run(monkeypatch):
    monkeypatch.setattr(cli, "saved_wall_seconds", lambda profile: {"mnist": 4349.7})
    assert "takes over an hour" in cli.mnist_line() and "72 min" in cli.mnist_line()
    monkeypatch.setattr(cli, "saved_wall_seconds", lambda profile: {})
    assert "see README" in cli.mnist_line() and "see README" in cli.run_times("paper")


@pytest.mark.parametrize("profile, folder", [("ci", "_build/results/ci"), ("paper", "results/paper"),
                                             ("full", "results/full")])
def test_default_out_is_the_folder_the_book_reads(monkeypatch, profile, folder):
    from koopman_repro import book, report
    from koopman_repro.results import REPO_ROOT
    seen = []
    monkeypatch.setattr("koopman_repro.experiments.reproduce", lambda name, prof, out, **k: seen.append(out) or {})
    experiment = "beyond" if profile == "full" else "perceptron"
    assert cli.main(["reproduce", experiment, "--profile", profile]) == 0
    assert seen == [REPO_ROOT / folder]
    # where the book reads each profile: the build's results folder (ci) and the committed runs
    book_reads = {"ci": book.BUILD / "results" / "ci", "paper": report.PAPER_RESULTS,
                  "full": report.PAPER_RESULTS.parent / "full"}
    assert seen[0] == book_reads[profile]


def test_bench_default_out_is_the_folder_the_book_reads(monkeypatch):
    from koopman_repro.results import REPO_ROOT
    seen = []
    monkeypatch.setattr("koopman_repro.bench.main", lambda profile, out: seen.append((profile, out)) or 0)
    assert cli.main(["bench", "--profile", "paper"]) == 0
    assert seen == [("paper", REPO_ROOT / "results" / "paper")]


def test_run_times_come_from_results_files_of_that_profile(monkeypatch, tmp_path):
    import json
    from koopman_repro.results import REPO_ROOT
    monkeypatch.setattr(cli, "REPO_ROOT", tmp_path)
    out = tmp_path / "_build" / "results" / "ci"
    out.mkdir(parents=True)
    (out / "perceptron.json").write_text(json.dumps({"wall_seconds": 42.0, "provenance": {"profile": "ci"}}))
    (out / "mnist.json").write_text(json.dumps({"wall_seconds": 7200.0, "provenance": {"profile": "paper"}}))
    (out / "notebook-timings.json").write_text(json.dumps({"wall_seconds": 900.0, "profile": "ci"}))
    assert cli.saved_wall_seconds("ci") == {"perceptron": 42.0}
    assert cli.run_times("ci") == "ci: perceptron 42 s"
    assert "see README" in cli.run_times("paper")
    assert REPO_ROOT != tmp_path
