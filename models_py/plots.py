"""Figures people would rather look at than read: ROC, calibration, importance, distributions."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI

import lightgbm as lgb
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_auc_score, roc_curve

CALIBRATION_BINS = 10


def _save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def roc_plot(predictions: pd.DataFrame, path: Path, title: str) -> Path:
    false_positive, true_positive, _ = roc_curve(predictions["actual"], predictions["probability"])
    auc = roc_auc_score(predictions["actual"], predictions["probability"])
    figure, axes = plt.subplots(figsize=(5.5, 5))
    axes.plot(false_positive, true_positive, label=f"model (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    axes.legend(loc="lower right")
    return _save(figure, path)


def calibration_plot(samples: dict[str, pd.DataFrame], path: Path) -> Path:
    """Reliability diagram per sample, with the number of rows in each probability bin."""
    figure, (curve_axes, count_axes) = plt.subplots(
        2, 1, figsize=(6, 7), gridspec_kw={"height_ratios": [3, 1.4]}, sharex=True
    )
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    width = 0.9 / CALIBRATION_BINS / max(len(samples), 1)
    for index, (label, frame) in enumerate(samples.items()):
        observed, predicted = calibration_curve(
            frame["actual"], frame["probability"], n_bins=CALIBRATION_BINS, strategy="uniform"
        )
        curve_axes.plot(predicted, observed, marker="o", label=label)
        counts, _ = np.histogram(frame["probability"], bins=edges)
        positions = edges[:-1] + width * (index + 0.5)
        bars = count_axes.bar(positions, counts, width=width, align="center", label=label)
        count_axes.bar_label(bars, fontsize=6)
    curve_axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    curve_axes.set(ylabel="observed podium share", title="calibration")
    curve_axes.legend(loc="upper left")
    count_axes.set(xlabel="predicted probability", ylabel="rows per bin", yscale="log")
    return _save(figure, path)


def importance_plot(booster: lgb.Booster, kind: str, path: Path) -> Path:
    importance = pd.Series(
        booster.feature_importance(importance_type=kind), index=booster.feature_name()
    ).sort_values()
    figure, axes = plt.subplots(figsize=(7, 0.28 * len(importance) + 1.2))
    axes.barh(importance.index, importance.to_numpy())
    label = "number of splits" if kind == "split" else "total gain"
    axes.set(xlabel=label, title=f"feature importance by {kind}")
    axes.tick_params(axis="y", labelsize=8)
    return _save(figure, path)


def distribution_plot(predictions: pd.DataFrame, path: Path, title: str) -> Path:
    figure, axes = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 41)
    for actual, label in ((0, "no podium"), (1, "podium")):
        values = predictions.loc[predictions["actual"] == actual, "probability"]
        axes.hist(values, bins=bins, alpha=0.6, density=True, label=f"{label} (n={len(values)})")
    axes.set(xlabel="predicted podium probability", ylabel="density", title=title)
    axes.legend()
    return _save(figure, path)


def brier_by_season_plot(table: pd.DataFrame, highlight: str, path: Path) -> Path:
    """Mean Brier per validation season (rows) for each candidate (columns), lower is better."""
    figure, axes = plt.subplots(figsize=(9, 5))
    for name in table.columns:
        emphasis = {"linewidth": 2.6, "zorder": 3} if name == highlight else {"linewidth": 1.1}
        axes.plot(table.index, table[name], marker="o", markersize=3, label=name, **emphasis)
    axes.set(
        xlabel="validation season",
        ylabel="mean Brier (lower is better)",
        title=f"Brier per CV season: {highlight} (bold) against every other candidate",
    )
    axes.legend(fontsize=8, ncol=2)
    axes.grid(alpha=0.3)
    return _save(figure, path)


def ablation_plot(table: pd.DataFrame, path: Path) -> Path:
    """Mean CV Brier after each ablation step, with the naive rule as a reference line."""
    reference = table[table["kept"] == "-"]
    steps = table[table["kept"] != "-"]
    figure, axes = plt.subplots(figsize=(9, 0.42 * len(steps) + 1.6))
    colours = ["tab:blue" if kept == "yes" else "tab:grey" for kept in steps["kept"]]
    axes.barh(steps["step"], steps["cv_brier"], color=colours)
    for position, value in enumerate(steps["cv_brier"]):
        axes.text(value, position, f" {value:.4f}", va="center", fontsize=8)
    if not reference.empty:
        naive = float(reference["cv_brier"].iloc[0])
        axes.axvline(naive, color="tab:red", linestyle="--", label=f"naive rule {naive:.4f}")
        axes.legend(loc="lower right")
    low = float(table["cv_brier"].min())
    high = float(table["cv_brier"].max())
    axes.set_xlim(low - 0.15 * (high - low) - 1e-4, high + 0.25 * (high - low) + 1e-4)
    axes.invert_yaxis()
    axes.set(
        xlabel="mean CV Brier (lower is better); grey = measured, not kept",
        title="ablation, one lever at a time",
    )
    return _save(figure, path)
