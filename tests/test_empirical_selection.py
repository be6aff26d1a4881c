"""Model selection on ID validation (issue 8 §2), on fake curves: (lr, epoch) choice, edge-of-grid,
plateau and rule-of-thumb warnings. Pure Python: no torch needed."""

import pytest

from twolayer.empirical.selection import (Curve, best_epoch, edge_warning, plateau_warning, rule_of_thumb_warning,
                                          select_run)


def test_best_epoch_skips_the_start_and_breaks_ties_by_loss_then_earliest():
    c = Curve(0.1, [0, 1, 2, 3, 4], [0.9, 0.5, 0.7, 0.7, 0.6], [0.1, 1.0, 0.8, 0.6, 0.9])
    assert best_epoch(c) == (3, 0.7)  # epoch 0 (the start) is not a trained checkpoint; tie -> lower loss
    c = Curve(0.1, [0, 1, 2, 3], [0.1, 0.7, 0.7, 0.6])  # no losses: tie -> earliest
    assert best_epoch(c) == (1, 0.7)


def test_select_run_picks_the_best_lr_at_its_best_epoch():
    curves = [Curve(1e-3, [0, 1, 2, 3], [0.2, 0.5, 0.6, 0.65]),
              Curve(1e-2, [0, 1, 2, 3], [0.2, 0.8, 0.9, 0.85]),  # best: lr 1e-2 at epoch 2
              Curve(1e-1, [0, 1, 2, 3], [0.2, 0.3, 0.88, 0.1])]
    s = select_run(curves)
    assert (s.index, s.lr, s.epoch, s.id_val) == (1, 1e-2, 2, 0.9)
    assert s.warnings == []  # interior lr, peaked before the last epoch


def test_diverged_runs_are_never_selected_unless_all_diverged():
    curves = [Curve(1e-2, [0, 1, 2], [0.2, 0.6, 0.7]),
              Curve(1e-1, [0, 1, 2], [0.2, 0.99, 0.99], diverged=True),
              Curve(1.0, [0, 1, 2], [0.2, 0.3, 0.4])]
    s = select_run(curves)
    assert s.lr == 1e-2 and any("smallest" in w for w in s.warnings)
    s = select_run([Curve(0.1, [0, 1], [0.1, 0.2], diverged=True), Curve(1.0, [0, 1], [0.1, 0.3], diverged=True)])
    assert s.lr == 1.0 and any("diverged" in w for w in s.warnings)


def test_edge_warnings():
    grid = [1e-4, 1e-3, 1e-2]
    assert "smallest" in edge_warning(grid, 1e-4)
    assert "largest" in edge_warning(grid, 1e-2, "LP C")
    assert edge_warning(grid, 1e-3) is None
    assert "one value" in edge_warning([0.1], 0.1)
    with pytest.raises(ValueError):
        edge_warning([], 0.1)
    # select_run reports the edge against the grid it is given, not only the curves
    s = select_run([Curve(1e-3, [0, 1, 2], [0.1, 0.9, 0.8])], grid=grid)
    assert s.warnings == []
    s = select_run([Curve(1e-3, [0, 1, 2], [0.1, 0.9, 0.8]), Curve(1e-2, [0, 1, 2], [0.1, 0.5, 0.4])])
    assert any("smallest" in w for w in s.warnings)


def test_plateau_warning_when_still_rising_at_the_last_epoch():
    rising = Curve(0.01, list(range(9)), [0.1, 0.5, 0.6, 0.65, 0.7, 0.72, 0.75, 0.8, 0.85])
    w = plateau_warning(rising, 8)
    assert w is not None and "not plateaued" in w and "epoch 8" in w
    flat = Curve(0.01, list(range(9)), [0.1, 0.5, 0.6, 0.8, 0.84, 0.85, 0.85, 0.85, 0.852])
    assert plateau_warning(flat, 8) is None  # +0.2 points over the last quarter < tol
    assert plateau_warning(rising, 7) is None  # best is not the last epoch
    s = select_run([Curve(1e-3, rising.epochs, [0.1] * 9), rising, Curve(1e-1, rising.epochs, [0.1] * 9)])
    assert s.epoch == 8 and any("not plateaued" in w for w in s.warnings)


def test_rule_of_thumb():
    assert "FT is below LP on ID" in rule_of_thumb_warning(0.95, 0.92, where="pacs: ")
    assert rule_of_thumb_warning(0.92, 0.95) is None
    assert rule_of_thumb_warning(float("nan"), 0.95) is None


def test_curve_validation():
    with pytest.raises(ValueError, match="same non-zero number"):
        Curve(0.1, [0, 1], [0.5])
    with pytest.raises(ValueError, match="id_val_loss"):
        Curve(0.1, [0, 1], [0.5, 0.6], [0.1])
