"""The command line as a front door: user errors print the library's message and exit 2."""
from __future__ import annotations

import pytest

from koopman_lib import FitError, cli
from koopman_lib.data import DataError


def test_bad_settings_exit_2_with_the_message_and_no_traceback(capsys):
    assert cli.main(["reproduce", "perceptron", "--set", "no_equals_sign"]) == 2
    err = capsys.readouterr().err
    assert "--set expects key=value" in err and "Traceback" not in err
    assert cli.main(["reproduce", "perceptron", "--profile", "nope"]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("error", [FitError("the recording holds 3 of 10 snapshots; finish t1..t2 first"),
                                   DataError("file is truncated; delete it and set KOOPMAN_DATA_DIR")])
def test_library_errors_during_a_run_exit_2(monkeypatch, capsys, tmp_path, error):
    def fail(*a, **k):
        raise error
    monkeypatch.setattr("koopman_lib.experiments.reproduce", fail)
    assert cli.main(["reproduce", "perceptron", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(error) in err and "Traceback" not in err


def test_a_bug_is_not_disguised_as_a_user_error(monkeypatch, tmp_path):
    def bug(*a, **k):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr("koopman_lib.experiments.reproduce", bug)
    with pytest.raises(ZeroDivisionError):
        cli.main(["reproduce", "perceptron", "--out", str(tmp_path)])
