"""One conventional command line: the same options with one meaning everywhere, `python -m`
prog names, help on every option, unknown names and missing folders are usage errors."""

import argparse
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.__main__ import experiment_names

REPO = Path(__file__).resolve().parent.parent

#: Theorem-check experiments: all built on experiments._common.cli.
SWEEPS = [n for n in experiment_names() if n not in ("benchmark_flow", "benchmark_host", "scoreboard", "wise_real")
          and not n.startswith("empirical") and n != "real_features"]
COMMON = {"--quick", "--seed", "--out", "--force", "--executor", "--workers", "--scheduler"}


class _Captured(Exception):
    pass


def _parser_of(monkeypatch, main, argv=()):
    """The ArgumentParser a ``main(argv)`` builds (captured at parse time; nothing runs)."""
    seen = {}

    def capture(self, args=None, namespace=None):
        seen["parser"] = self
        raise _Captured

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Captured):
        main(list(argv))
    return seen["parser"]


def _options(parser) -> dict:
    return {s: a for a in parser._actions for s in a.option_strings}


def test_python_m_experiments_lists_every_experiment_with_a_description():
    res = subprocess.run([sys.executable, "-m", "experiments"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    lines = {ln.split()[0]: ln for ln in res.stdout.splitlines()[1:] if ln.strip()}
    for name in ["conditions", "bound_tightness", "benchmark_flow", "toy2d"]:
        assert name in lines
    for name in experiment_names():
        assert name in lines and len(lines[name].split()) > 2, f"{name} has no description"
    assert not re.search(r"\bissues? \d", res.stdout), "internal issue numbers in descriptions"


@pytest.mark.parametrize("name", SWEEPS)
def test_every_sweep_experiment_has_the_common_options_with_help(monkeypatch, name):
    mod = importlib.import_module(f"experiments.{name}")
    parser = _parser_of(monkeypatch, mod.main)
    assert parser.prog == f"python -m experiments.{name}"
    opts = _options(parser)
    assert COMMON <= set(opts), COMMON - set(opts)
    for action in parser._actions:
        assert action.help and action.help != argparse.SUPPRESS, f"{action.option_strings} has no help"
    assert not re.search(r"\bissues? \d", parser.description or ""), "internal issue numbers"
    assert "results cache" in opts["--out"].help      # --out is the results cache in experiments


@pytest.mark.parametrize("name", ["benchmark_flow", "benchmark_host"])
def test_benchmark_has_the_conventional_options_with_help(monkeypatch, name):
    mod = importlib.import_module(f"experiments.{name}")
    parser = _parser_of(monkeypatch, mod.main)
    assert parser.prog == f"python -m experiments.{name}"
    assert {"--quick", "--seed", "--out"} <= set(_options(parser))
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
    assert not re.search(r"\bissues? \d", parser.description or ""), "internal issue numbers"


def _usage_error(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1"], "non-negative integer"),
    (["--seed", "1.5"], "non-negative integer"),
    (["--workers", "2"], "--executor dask"),
    (["--scheduler", "tcp://127.0.0.1:1"], "--executor dask"),
    (["--executor", "dask", "--workers", "0"], "positive integer"),
    (["--executor", "dask", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "scheduler"),
    (["--executor", "spark"], "invalid choice"),
])
def test_experiment_usage_errors_exit_2_and_say_why(capsys, argv, message):
    from experiments import invariants
    assert message in _usage_error(invariants.main, argv, capsys)


def test_cache_is_an_alias_of_out_in_experiments(monkeypatch):
    from experiments._common import add_common_args
    ap = add_common_args(argparse.ArgumentParser())
    assert ap.parse_args(["--cache", "X"]).out == Path("X") == ap.parse_args(["--out", "X"]).out
    ap2 = add_common_args(argparse.ArgumentParser(), results="cache")
    assert ap2.parse_args(["--cache", "X"]).cache == Path("X") and "--out" not in _options(ap2)


def test_figures_unknown_name_is_a_usage_error_listing_valid_names(capsys, tmp_path):
    from figures._cli import figure_names, main
    err = _usage_error(main, ["bogus", "--cache", str(tmp_path)], capsys)
    assert "bogus" in err and all(n in err for n in figure_names())


def test_figures_missing_cache_folder_is_a_usage_error(capsys, tmp_path):
    from figures._cli import figure_main, main
    assert "does not exist" in _usage_error(main, ["--cache", str(tmp_path / "nope")], capsys)
    err = _usage_error(lambda a: figure_main("conditions", a), ["--cache", str(tmp_path / "nope")], capsys)
    assert "does not exist" in err
    err = _usage_error(main, ["--cache", str(tmp_path), "--empirical", str(tmp_path / "nope")], capsys)
    assert "--empirical" in err


def test_figure_named_but_not_cached_exits_1(tmp_path, capsys):
    from figures._cli import main
    assert main(["conditions", "--cache", str(tmp_path), "--out", str(tmp_path / "figs")]) == 1
    assert "skipped" in capsys.readouterr().out


def test_figures_help_documents_out_as_the_figure_folder_and_cache_as_results(monkeypatch):
    from figures._cli import main
    opts = _options(_parser_of(monkeypatch, main))
    assert "figure folder" in opts["--out"].help
    assert "results cache" in opts["--cache"].help
    for action in set(opts.values()):
        assert action.help


def test_figure_modules_parse_the_same_options_under_python_m(monkeypatch):
    from figures._cli import figure_main
    parser = _parser_of(monkeypatch, lambda argv: figure_main("toy2d", argv))
    assert parser.prog == "python -m figures.toy2d"
    assert {"--cache", "--out"} <= set(_options(parser))
    from figures._cli import figure_names
    for name in figure_names():
        src = (REPO / "figures" / f"{name}.py").read_text()
        if name == "empirical_distortion":          # its own parser (it reads two result folders)
            assert "python -m figures.empirical_distortion" in src and "add_argument" in src
            continue
        assert f'figure_main("{name}")' in src, name   # `python -m figures.NAME` goes through the CLI


def test_executor_dask_without_distributed_is_a_usage_error(monkeypatch, capsys):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else real(name, *a))
    from experiments import invariants
    assert "pip install" in _usage_error(invariants.main, ["--executor", "dask"], capsys)


@pytest.mark.parametrize("name", experiment_names())
def test_every_experiment_is_python_m_with_help_on_every_option(monkeypatch, name):
    mod = importlib.import_module(f"experiments.{name}")
    parser = _parser_of(monkeypatch, mod.main)
    assert parser.prog == f"python -m experiments.{name}"
    for action in parser._actions:
        assert action.help and action.help != argparse.SUPPRESS, f"{action.option_strings} has no help"
