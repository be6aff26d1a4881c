"""experiments.beyond_lpft on a tiny grid: records, selection, the check rows' contract and the
exact rows (reference agreement, conserved quantity, ensemble closed form) passing."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from experiments import beyond_lpft as bl
from experiments._checks import validate_row


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = dataclasses.replace(bl.Config.quick(), d=20, k=2, m=8, n=12, eps=(0.01, 1.4), rhos=(1e-4, 0.99),
                              head_inits=("gaussian",), n_seeds=7, n_val=200, gammas=(0.03, 0.3), small_rate=0.03,
                              lp_times=(0.01, 1.0), n_alpha=5)
    out = tmp_path_factory.mktemp("bl")
    bl.run(cfg, out=out)
    from experiments._common import load_records
    return cfg, load_records(bl.NAME, cfg, out=out)


def test_rows_follow_the_contract_and_exact_rows_pass(tiny):
    cfg, df = tiny
    rows = [validate_row(r) for r in bl.check(df, cfg)]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))
    exact = {r["id"]: r for r in rows if r["id"] in ("two_rate_flow_matches_reference",
                                                      "conserved_quantity_two_rate", "ensemble_closed_form")}
    assert len(exact) == 3 and all(r["status"] == "pass" for r in exact.values())
    for r in rows:
        assert r["n_cases"] > 0 and (r["status"] != "not_applicable" or r["margin"] is None)
    assert set(bl.OBSERVATIONS) <= set(ids)


def test_bad_config_is_refused():
    from twolayer.errors import TwoLayerInputError
    for bad in (dict(small_rate=0.5), dict(gammas=(-1.0, 0.01)), dict(lp_times=(float("nan"),)), dict(n_alpha=2)):
        with pytest.raises(TwoLayerInputError):
            bl.run(dataclasses.replace(bl.Config.quick(), **bad), out="/nonexistent")


def test_family_ends_are_the_baselines(tiny):
    """rate at gamma = 0 / 1 is LP / FT; plp at 0 / inf is FT / LP-FT; every alpha path starts and ends
    at its endpoints (same OOD loss)."""
    _, df = tiny
    key = ["seed", "rho"]
    ood = lambda fam, par=None: (df[(df.family == fam) & ((df.param == par) if par is not None else True)]
                                 .set_index(key).ood_loss.sort_index())
    pd.testing.assert_series_equal(ood("rate", 0.0), ood("lp"), check_names=False)
    pd.testing.assert_series_equal(ood("rate", 1.0), ood("ft"), check_names=False)
    pd.testing.assert_series_equal(ood("plp", 0.0), ood("ft"), check_names=False)
    pd.testing.assert_series_equal(ood("plp", np.inf), ood("lpft"), check_names=False)
    for fam in ("wise_lp_ft", "ens_lp_ft"):
        np.testing.assert_allclose(ood(fam, 0.0), ood("lp"), rtol=1e-12)
        np.testing.assert_allclose(ood(fam, 1.0), ood("ft"), rtol=1e-12)


def test_selection_uses_the_criterion(tiny):
    _, df = tiny
    for by in ("val_loss", "ood_loss"):
        sel = bl.selected(df, "rate", by)
        g = df[df.family == "rate"]
        best = g.groupby(["seed", "rho"])[by].min()
        np.testing.assert_array_equal(sel.set_index(["seed", "rho"])[by].sort_index(), best.sort_index())
    table = bl.winner_table(df)
    assert {"lp", "ft", "rate", "plp"} <= set(table.columns) and np.all(np.isfinite(table.to_numpy()))
