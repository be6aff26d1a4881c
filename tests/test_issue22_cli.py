"""Issue 22: output folders are checked before any computation, a missing PyTorch is one line,
every CLI speaks paper_checks' statuses, and sweeps show per-unit progress with an ETA."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BAD_OUTS = ("afile", "/proc/twolayer_no_such_dir/out")


def _bad(tmp_path, kind):
    if kind == "afile":
        path = tmp_path / "afile"
        path.write_text("not a folder")
        return path
    return Path(kind)


def _never(*a, **k):
    raise AssertionError("computed before the output folder was checked")


@pytest.mark.parametrize("kind", BAD_OUTS)
def test_experiment_cli_refuses_bad_out_before_computing(tmp_path, kind, capsys, monkeypatch):
    from experiments import toy2d
    monkeypatch.setattr(toy2d, "run", _never)
    out = _bad(tmp_path, kind)
    with pytest.raises(SystemExit) as e:
        toy2d.main(["--quick", "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"option `--out / --cache`: {out}" in err and "give a folder you can create files in" in err


@pytest.mark.parametrize("kind", BAD_OUTS)
def test_paper_checks_refuses_bad_out_before_computing(tmp_path, kind, capsys, monkeypatch):
    from paper_checks import runner
    from twolayer.errors import TwoLayerInputError
    monkeypatch.setattr(runner, "_run_experiment", _never)
    out = _bad(tmp_path, kind)
    with pytest.raises(SystemExit) as e:
        runner.main(["--quick", "--only", "toy2d", "--out", str(out), "--cache", str(tmp_path / "cache")])
    assert e.value.code == 2 and f"option `--out`: {out}" in capsys.readouterr().err
    # the library call checks too, before its first experiment
    with pytest.raises(TwoLayerInputError, match="nothing was computed"):
        runner.run_checks(quick=True, out=out, cache=tmp_path / "cache", only=["toy2d"], log=lambda s: None)
    with pytest.raises(SystemExit):      # a bad --cache as well
        runner.main(["--quick", "--only", "toy2d", "--out", str(tmp_path / "rep"), "--cache", str(out)])
    assert f"option `--cache`: {out}" in capsys.readouterr().err


def test_figures_refuse_an_unwritable_out(tmp_path, capsys):
    from figures._cli import main
    (tmp_path / "cache").mkdir()
    with pytest.raises(SystemExit) as e:
        main(["--cache", str(tmp_path / "cache"), "--out", BAD_OUTS[1]])
    assert e.value.code == 2 and f"option `--out`: {BAD_OUTS[1]}" in capsys.readouterr().err


def test_missing_torch_is_one_clean_line(tmp_path):
    code = ("import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None; "
            "from experiments.real_features import main; "
            f"main(['--quick', '--out', {str(tmp_path)!r}])")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert "Traceback" not in res.stderr and len(lines) == 1, res.stderr
    assert "needs torch" in lines[0] and 'pip install -e ".[empirical]"' in lines[0]


def test_real_features_cli_prints_findings_and_exits_like_paper_checks(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    from experiments import real_features as rf
    observed = next(iter(rf.OBSERVATIONS))
    rows = [dict(id=observed, status="fail", claim="c", source="s", margin=-1.0, unit="u", n_cases=2,
                 details="an observation that failed")]
    monkeypatch.setattr(rf, "run", lambda *a, **k: [{"x": 1}])
    monkeypatch.setattr(rf, "summary_table", lambda df: "")
    monkeypatch.setattr(rf, "agreement_lines", lambda df: [])
    monkeypatch.setattr(rf, "check", lambda df, config: rows)
    assert rf.main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"[finding] {observed}" in out and "[fail]" not in out
    rows.append(dict(rows[0], id="not_registered"))      # an unregistered failure: exit 1, as paper_checks
    assert rf.main(["--quick", "--out", str(tmp_path)]) == 1
    assert "[fail] not_registered" in capsys.readouterr().out


def _square(unit):
    return [{"y": unit["i"] ** 2}]


def test_sweep_progress_lines_with_eta(tmp_path, monkeypatch, capsys):
    from experiments import _common
    monkeypatch.setattr(_common, "PROGRESS_EVERY_S", 0.0)
    recs = _common.run_sweep("progress_demo", {"n": 4}, [{"i": i} for i in range(4)], _square, tmp_path,
                             progress=True)
    assert [r["y"] for r in recs] == [0, 1, 4, 9]
    err = capsys.readouterr().err
    assert "progress_demo: 4 unit(s) to compute" in err
    assert "progress_demo: 1/4 units" in err and "ETA" in err


def test_paper_checks_asks_for_progress(tmp_path, monkeypatch):
    from experiments import toy2d
    from paper_checks import runner
    seen = {}

    def fake_run(config, out=None, *, force=False, progress=None):
        seen["progress"] = progress
        raise KeyError("stop here")
    monkeypatch.setattr(toy2d, "run", fake_run)
    with pytest.raises(KeyError):
        runner._run_experiment("toy2d", True, 0, tmp_path, False, False, tmp_path, tmp_path, print)
    assert seen["progress"] is True


def test_figure_titles_state_seed_and_mode(tmp_path, monkeypatch):
    """conditions --seed 3 then figures: the figure must say which seed and mode it shows."""
    from experiments import toy2d
    from experiments._common import load_records
    from figures import _style
    from figures import toy2d as fig_toy2d
    toy2d.run(toy2d.Config.quick(3), out=tmp_path, progress=False)
    df = load_records("toy2d", out=tmp_path)
    assert df.attrs["source"]["seed"] == 3 and df.attrs["source"]["mode"] == "quick"
    assert _style.source_label(df) == "quick mode, seed 3"
    titles = []
    real_save = _style.save

    def spy(fig, out_dir, stem, source=None):
        _style.stamp(fig, source)
        titles.append(fig._suptitle.get_text())
        return real_save(fig, out_dir, stem)
    monkeypatch.setattr(fig_toy2d, "save", spy)
    paths = fig_toy2d.main(tmp_path, tmp_path / "figs")
    assert paths[0].is_file()
    assert titles and titles[0].startswith("[quick mode, seed 3] 2-D toy")


def test_one_seed_vocabulary_across_the_real_network_clis():
    """--seed and --seeds are one option in every command that takes several seeds."""
    import subprocess
    import sys
    for mod in ("experiments.empirical", "experiments.scoreboard", "experiments.empirical_gpu",
                "experiments.wise_real"):
        out = subprocess.run([sys.executable, "-m", mod, "--help"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1])
        if out.returncode != 0 and "torch" in (out.stdout + out.stderr).lower():
            continue                                 # the empirical extra is missing: one line, tested elsewhere
        assert "--seed" in out.stdout and "--seeds" in out.stdout, (mod, out.stdout[-400:], out.stderr[-400:])
