"""The end of a search: the best trial's best checkpoint, evaluated with the IWAE bound.

    python -m search.export STORAGE/NAME [--tracking-uri URI] [--samples K] [--limit N] [--no-tracking]

- STORAGE/NAME/best/       the best checkpoint, a matnet checkpoint folder
                           (python -m matnet.evaluate STORAGE/NAME/best, python -m matnet.sample ...)
- STORAGE/NAME/figures/    samples.png, kl_per_layer.json/.png (per-layer KL on the evaluated split),
                           evaluation.json; param_importances.png, parallel_coordinates.png (the
                           Optuna study's trials that trained their whole budget)
- STORAGE/NAME/summary.json  the best configuration, its metrics and IWAE evaluation, the top trials

and the same figures, the IWAE figures and the parameter importances logged to the search's tracking
back-ends (MLflow: its parent run, with the checkpoint as a model registered with the alias
`champion`; TensorBoard: its own run).
`search.run` calls this when a search ends; run it by hand for a search that was interrupted (it
uses the trials finished so far) or to evaluate again with other settings. It reads the search
folder's own plain files (search.json, space.yaml, trials.json, checkpoints), never Tune's state.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from matnet.cli import ArgumentParser

from .store import ranking, storage
from .store.errors import ExportError
from .store.folder import SearchFolder
from .store.ledger import TrialRecord, read_records
from .store.study_figures import study_figures
from .store.table import lineage_lines, print_table
from .tune.evaluation import evaluate_best, evaluate_on_ray


def export_search(exp_dir: str, *, records: dict[str, TrialRecord] | None = None, tracker: Any = None,
                  tracking_uri: str | None = None, iwae_k: int | None = None, limit: int | None = None,
                  device: str | None = None, data_dir: str | None = None, log_tracking: bool = True,
                  progress: bool = False, print_results: bool = True, on_ray: bool = False) -> dict[str, Any]:
    """Copy the best checkpoint to EXP_DIR/best, evaluate it, write summary.json, log it to the search's
    trackers (`tracker`: the running search's; else made from search.json, with `tracking_uri` instead
    of the one it logged to). `records`: trials.json as the caller just read it.
    With `on_ray` (a search that just ended, Ray still up) the IWAE evaluation runs as a Ray task that
    asks for a trial's resources, so on a cluster it runs where the trials ran (on a GPU when they had
    one), not in the driver."""
    from . import tracking

    folder = SearchFolder(exp_dir)
    info = folder.read_info()
    settings = folder.saved_space(info).settings
    metric, mode = settings.experiment.metric, settings.experiment.mode
    records = read_records(folder) if records is None else records
    best = ranking.best_trial(folder, records, metric, mode)
    if not log_tracking:
        tracker = tracking.Trackers([])
    elif tracker is None:
        tracker = tracking.for_export(settings, info, tracking_uri)
    with storage.local_copy(folder.file(ranking.best_checkpoint(folder, best, metric, mode))) as chosen:
        storage.replace_dir(chosen, folder.best)

    export = settings.export
    k = iwae_k or export.iwae_k
    n_limit = export.limit if limit is None else limit
    if on_ray:
        evaluation, config, meta = evaluate_on_ray(folder.best, export, k, n_limit, device or export.device, data_dir,
                                                   settings.experiment.resources)
    with tempfile.TemporaryDirectory() as tmp, storage.local_copy(folder.best) as best_dir:
        if not on_ray:
            evaluation, config, meta = evaluate_best(best_dir, export, k, n_limit, device or export.device, data_dir,
                                                     progress)
        figures = Path(tmp) / "figures"
        figures.mkdir()
        files = best_figures(best_dir, figures, export.sample_images, evaluation)

        rows = ranking.trial_rows(records, metric, mode)
        summary = summary_of(folder, info, metric, mode, best, meta, config.to_dict(), evaluation, records, rows,
                             export.top_trials)
        not_recorded = info.study.not_recorded()
        importances, study_files, why_none = (({}, [], f"the Optuna study records no trials ({not_recorded})")
                                              if not_recorded else study_figures(info.study, figures))
        summary["param_importances"] = importances or why_none
        storage.replace_dir(figures, folder.figures)
        summary.update(tracker.log_best(summary, files, study_files, importances, best_dir))
        text = json.dumps(summary, indent=2, default=str) + "\n"
        storage.write_text(folder.summary, text)
        tracker.log_summary(text)

    if print_results:
        print_summary(folder, summary, rows, records, export.top_trials, tracker.best_lines(summary))
    return summary


def summary_of(folder: SearchFolder, info: Any, metric: str, mode: str, best: TrialRecord, meta: dict[str, Any],
               config: dict[str, Any], evaluation: dict[str, Any], records: dict[str, TrialRecord],
               rows: list[dict[str, Any]], top: int) -> dict[str, Any]:
    """summary.json, less what the study and the tracking back-ends add."""
    return {
        "search": info.name,
        "space_file": info.space_file,
        "experiment_dir": folder.path,
        "metric": metric,
        "mode": mode,
        "strategy": info.strategy,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "best": {
            "trial_id": best.trial_id,
            "status": best.outcome,
            f"best_{metric}": best.best_value,
            "checkpoint": folder.best,
            "checkpoint_step": meta.get("step"),
            "params": dict(best.current_params),
            "config": config,
            "metrics": dict(meta.get("metrics", {})),
            "evaluation": evaluation,
        },
        "top_trials": rows[:top],
        "trials": ranking.outcome_counts(records),
        "exploitations": sum(len(r.lineage) for r in records.values()),
    }


def best_figures(checkpoint: Path, out: Path, sample_images: int, evaluation: dict[str, Any]) -> list[Path]:
    from matnet.figures import checkpoint_figures

    title = f"best: {evaluation['split']} per-layer KL (IWAE run, k={evaluation['iwae_k']})"
    files = checkpoint_figures(checkpoint, out, sample_images, title, evaluation["kl_per_layer"])
    (out / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n")
    return [*files, out / "evaluation.json"]


def print_summary(folder: SearchFolder, summary: dict[str, Any], rows: list[dict[str, Any]],
                  records: dict[str, TrialRecord], top: int, tracked: list[str]) -> None:
    metric, best = summary["metric"], summary["best"]
    evaluation = best["evaluation"]
    print_table(rows, metric, top, f"Best trials of {summary['search']} (by {metric}, {summary['mode']})")
    for line in lineage_lines(records):
        print(line)
    bpd = f", {evaluation['bpd']:.4f} bits/dim" if "bpd" in evaluation else ""
    print(f"best trial {best['trial_id']}: {metric} {best[f'best_{metric}']:.3f} at step {best['checkpoint_step']}; "
          f"{evaluation['split']} IWAE (k={evaluation['iwae_k']}, {evaluation['n_images']} images): "
          f"{evaluation['nll_nats']:.3f} +- {evaluation['nll_stderr']:.3f} nats{bpd}")
    use = ("copy it to a local folder for python -m matnet.evaluate / matnet.sample" if storage.is_uri(folder.best)
           else f"python -m matnet.evaluate {folder.best}; python -m matnet.sample {folder.best}")
    print(f"best checkpoint: {folder.best}   ({use})")
    for line in tracked:  # what the tracking back-ends made of the best (a registered model)
        print(line)
    print(f"summary: {folder.summary}")


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m search.export", description=__doc__.split("\n\n")[0])
    p.add_argument("experiment_dir", help="a search's folder: STORAGE/NAME (local path or URI)")
    p.add_argument("--tracking-uri", help="MLflow's tracking URI (default: the one the search logged to)")
    p.add_argument("--samples", type=int, help="IWAE importance samples K (default: export.iwae_k of the space)")
    p.add_argument("--limit", type=int, help="images to evaluate (default: export.limit of the space; 0: all)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N (default: export.device of the space)")
    p.add_argument("--data-dir", help="where the data set's files are (default: the search's)")
    p.add_argument("--no-tracking", action="store_true", help="log to no tracking back-end (MLflow, TensorBoard)")
    p.add_argument("--progress", action="store_true", help="show a progress bar during the IWAE evaluation")
    args = p.parse_args(argv)
    exp_dir = args.experiment_dir if storage.is_uri(args.experiment_dir) else str(Path(args.experiment_dir).resolve())
    storage.check_reachable(exp_dir, "search folder")
    if args.samples is not None and args.samples < 1:
        raise ExportError(f"--samples must be >= 1, got {args.samples}")
    export_search(exp_dir, tracking_uri=args.tracking_uri, iwae_k=args.samples, limit=args.limit,
                  device=args.device, data_dir=args.data_dir, log_tracking=not args.no_tracking,
                  progress=args.progress)
    return 0


if __name__ == "__main__":
    from .cli import run_cli
    run_cli(main)
