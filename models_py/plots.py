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
