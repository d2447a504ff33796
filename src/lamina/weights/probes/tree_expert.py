"""One tree's ProbeX expert, fitted the same way by training and by the evaluation.

Both :meth:`~lamina.weights.experts.ProbeXMixture.fit_zoo` and :func:`~lamina.weights.eval.evaluate.evaluate_zoo`
sweep candidate layers and ProbeX settings per tree: each run is one ProbeX fitted on the tree's training models
and scored by mAP on its validation models (:func:`fit_candidate`), and the best run is kept (:func:`improves`,
:func:`best_run`). The expert's text readout is then fitted on its probe responses, its rank chosen, where candidate
ranks are given, by zero-shot on folds of the seen categories with the expert refitted without each fold's
categories (:func:`fit_text_readout`).

Training streams the candidate layers from disk and keeps the best run as it goes; the evaluation runs the sweep
in worker processes, one (layer, setting) per task, and chooses among the finished runs: the same two steps, the
sweep's loop is each caller's own.
"""

from __future__ import annotations

import numpy as np

from lamina.errors import InputError
from lamina.weights.probes.metrics import multilabel_metrics
from lamina.weights.probes.probex import ProbeX, ProbeXConfig
from lamina.weights.text.aligner import TextAligner, choose_text_rank


def fit_candidate(config: ProbeXConfig, Xtr, Ytr, Xva, Yva, *, nan_if_unscorable: bool = False
                  ) -> tuple[ProbeX, float]:
    """One sweep run: ProbeX with ``config`` fitted on the training models (Xtr, Ytr) and its validation mAP.

    Args:
        nan_if_unscorable: where the validation models cannot be scored (:class:`InputError` from the scoring, e.g.
            no category with both positive and negative validation models), a NaN mAP instead of the error.

    Returns:
        (the fitted expert, its mAP on Xva, Yva).
    """
    est = ProbeX(config).fit(Xtr, Ytr)
    try:
        return est, multilabel_metrics(Yva, est.decision_function(Xva))["map"]
    except InputError:
        if not nan_if_unscorable:
            raise
        return est, float("nan")


def improves(run: dict, best: dict | None) -> bool:
    """Whether sweep run ``run`` (``{"variant", "val_map", ...}``, variant 0: the default ProbeX settings) replaces
    ``best``, the best run so far (None: none yet).

    A higher validation mAP replaces (the first of equals stays); a scored run replaces an unscored one, never the
    other way round; among unscored runs (too few validation models), the later one with the default settings
    replaces: no other setting is adopted without evidence.
    """
    if best is None:
        return True
    if np.isnan(run["val_map"]):
        return bool(np.isnan(best["val_map"])) and run["variant"] == 0
    return bool(np.isnan(best["val_map"])) or run["val_map"] > best["val_map"]


def best_run(runs: list[dict]) -> dict | None:
    """The sweep run with the highest validation mAP (the first of equals), runs in sweep order. When no run could
    be scored (too few validation models), the last run with the default ProbeX settings (see :func:`improves`);
    None where there is no run."""
    best = None
    for run in runs:
        if improves(run, best):
            best = run
    return best


def fit_text_readout(expert: ProbeX, Xtr, Ytr, Xva, Yva, texts, *, folds: list[list[int]], ranks: list[int],
                     seed: int) -> tuple[TextAligner, int | None, dict[int, float] | None]:
    """The text readout of ``expert`` (fitted on Xtr, Ytr): a :class:`TextAligner` on its probe responses.

    With candidate ``ranks``, its rank is the one with the best zero-shot mAP on ``folds`` of the seen categories
    (validation models Xva, Yva), the expert refitted with its own settings without each fold's categories
    (:func:`~lamina.weights.text.aligner.choose_text_rank`); without, TextAligner's fixed default.

    Args:
        Ytr, Yva: the training and validation models' 0/1 labels over the seen categories.
        texts: the seen categories' text, as :meth:`TextAligner.fit` takes it.

    Returns:
        (the fitted readout, the chosen rank, {rank: mean fold mAP}); rank and scores None without ``ranks``.
    """
    r_tr = expert.responses(Xtr)
    chosen, rank, cv = {}, None, None
    if ranks:
        def refit(rest):  # the expert without a fold's categories
            e = ProbeX(expert.config_).fit(Xtr, Ytr[:, rest])
            return e.responses(Xtr), e.responses(Xva)

        rank, cv = choose_text_rank(refit, Ytr, Yva, texts, folds, ranks, seed=seed)
        chosen = {"rank": rank}
    return TextAligner(seed=seed, **chosen).fit(r_tr, Ytr, texts), rank, cv
