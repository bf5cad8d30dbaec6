"""What the search's Optuna study says once it ended: which searched parameters mattered (Optuna's
parameter importances) and how the trials spread over them (a parallel-coordinates plot), drawn
with the matplotlib backend of optuna.visualization.

Only trials that trained their whole budget (COMPLETE) are compared: a pruned trial's value is a
low-fidelity one, and ranking it against finished trials is what the searcher exists to avoid.
Conditional parameters (drawn by some trials only) are left out: the importance of a parameter is
measured over trials that all have it.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from .study import StudyRef

IMPORTANCES_PNG = "param_importances.png"
PARALLEL_PNG = "parallel_coordinates.png"


def study_figures(ref: StudyRef, out: Path) -> tuple[dict[str, float], list[Path], str | None]:
    """(importance of each parameter, the figures written into `out`, why there are none or None)."""
    import optuna
    from optuna.trial import TrialState

    study = ref.load()
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    params = sorted(set.intersection(*(set(t.params) for t in complete))) if complete else []
    varied = [p for p in params if len({repr(t.params[p]) for t in complete}) > 1]
    if len(complete) < 2 or not varied:
        return {}, [], (f"{len(complete)} trial(s) trained their whole budget, with {len(varied)} varied "
                        f"parameter(s) in common: too few to compare")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        importances = optuna.importance.get_param_importances(study, params=varied)
        files = [_save(optuna.visualization.matplotlib.plot_param_importances(study, params=varied),
                       out / IMPORTANCES_PNG),
                 _save(optuna.visualization.matplotlib.plot_parallel_coordinate(study, params=varied),
                       out / PARALLEL_PNG)]
    return {name: float(value) for name, value in importances.items()}, files, None


def _save(ax: Any, path: Path) -> Path:
    """Optuna draws on a pyplot figure: save it, then close it (pyplot keeps every figure open)."""
    import matplotlib.pyplot as plt
    fig = ax.figure
    fig.set_size_inches(max(6.4, fig.get_size_inches()[0]), 4.8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
