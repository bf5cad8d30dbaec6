"""The end of a search: the best trial's best checkpoint, evaluated with the IWAE bound.

    python -m search.export STORAGE/NAME [--tracking-uri URI] [--samples K] [--limit N] [--no-mlflow]

- STORAGE/NAME/best/       the best checkpoint, a matnet checkpoint directory
                           (python -m matnet.evaluate STORAGE/NAME/best, python -m matnet.sample ...)
- STORAGE/NAME/figures/    samples.png, kl_per_layer.json/.png (per-layer KL on the evaluated split)
- STORAGE/NAME/summary.json  the best configuration, its metrics and IWAE evaluation, the top trials

and the same figures, the checkpoint and the IWAE figures logged to the search's parent MLflow run.
`search.run` calls this when a search ends; run it by hand for a search that was interrupted (it
uses the trials finished so far) or to evaluate again with other settings.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

SEARCH_JSON = "search.json"
SPACE_COPY = "space.yaml"
SUMMARY = "summary.json"


# ---------------------------------------------------------------------------------------------
# Storage that may be a local directory or a URI (s3://, gs://, file://): pyarrow file systems.

def is_uri(path: str) -> bool:
    return "://" in str(path)


def _fs(path: str):
    import pyarrow.fs as pafs
    if is_uri(path):
        return pafs.FileSystem.from_uri(str(path))
    return pafs.LocalFileSystem(), str(Path(path).resolve())


def join(base: str, *parts: str) -> str:
    return "/".join([str(base).rstrip("/"), *parts]) if is_uri(base) else str(Path(base, *parts))


def read_text(path: str) -> str:
    if not is_uri(path):
        return Path(path).read_text()
    fs, p = _fs(path)
    with fs.open_input_stream(p) as f:
        return f.read().decode()


def write_text(path: str, text: str) -> None:
    if not is_uri(path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(path).with_name(Path(path).name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return
    fs, p = _fs(path)
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(p) as f:
        f.write(text.encode())


def exists(path: str) -> bool:
    if not is_uri(path):
        return Path(path).exists()
    import pyarrow.fs as pafs
    fs, p = _fs(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def upload_dir(local: Path, dest: str) -> None:
    """Replace `dest` with a copy of the local directory."""
    if not is_uri(dest):
        tmp = Path(dest).with_name(f".{Path(dest).name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(local, tmp)
        old = Path(dest).with_name(f".{Path(dest).name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if Path(dest).exists():
            Path(dest).rename(old)
        tmp.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
        return
    import pyarrow.fs as pafs
    fs, p = _fs(dest)
    try:
        fs.delete_dir(p)
    except (OSError, FileNotFoundError):
        pass
    fs.create_dir(p, recursive=True)
    pafs.copy_files(str(local), p, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


# ---------------------------------------------------------------------------------------------
# Reading a search back


class ExportError(RuntimeError):
    """A search directory that cannot be exported; the message says why and what to do."""


def read_search_info(exp_dir: str) -> dict[str, Any]:
    f = join(exp_dir, SEARCH_JSON)
    if not exists(f):
        raise ExportError(f"{exp_dir}: no {SEARCH_JSON} there; give the directory of a search started with "
                          f"python -m search.run (STORAGE/NAME)")
    try:
        return json.loads(read_text(f))
    except json.JSONDecodeError as e:
        raise ExportError(f"{f}: not valid JSON ({e}); the search directory is damaged") from None


def load_saved_space(exp_dir: str, info: dict[str, Any]):
    from .spaces import load_space
    text = read_text(join(exp_dir, SPACE_COPY))
    return load_space(info.get("space_file", SPACE_COPY), text=text, cwd=info.get("cwd"))


def result_grid(exp_dir: str):
    from ray.tune import ExperimentAnalysis, ResultGrid
    try:
        analysis = ExperimentAnalysis(exp_dir)
    except Exception as e:  # noqa: BLE001 - Ray raises several kinds for a missing/damaged state file
        raise ExportError(f"{exp_dir}: Ray Tune's experiment state cannot be read ({str(e).splitlines()[0]}); "
                          f"was the search started? resume it with python -m search.run SPACE --resume") from None
    return ResultGrid(analysis)


def _trial_states(grid: Any) -> dict[str, str]:
    """trial id -> Ray Tune's status (TERMINATED, ERROR, RUNNING, PENDING, PAUSED)."""
    analysis = getattr(grid, "_experiment_analysis", None)
    return {t.trial_id: t.status for t in getattr(analysis, "trials", None) or []}


def trial_status(result: Any, metric: str, max_t: int, ray_status: str | None = None) -> str:
    """completed, pruned (stopped early by the scheduler), diverged, error, or unfinished."""
    m = result.metrics or {}
    if result.error is not None or ray_status == "ERROR":
        return "error"
    if m.get("status") == "diverged":
        return "diverged"
    if ray_status not in (None, "TERMINATED") or not m:
        return "unfinished"
    if int(m.get("training_iteration", 0)) < max_t:
        return "pruned"
    return "completed"


def _best_value(result: Any, metric: str, mode: str) -> float | None:
    df = result.metrics_dataframe
    if df is None or metric not in df:
        v = (result.metrics or {}).get(metric)
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None
    col = df[metric].replace([math.inf, -math.inf], math.nan).dropna()
    if col.empty:
        return None
    return float(col.min() if mode == "min" else col.max())


def trial_rows(grid: Any, metric: str, mode: str, max_t: int) -> list[dict[str, Any]]:
    rows = []
    states = _trial_states(grid)
    for r in grid:
        m = r.metrics or {}
        tid = m.get("trial_id") or Path(r.path).name
        rows.append({
            "trial_id": tid,
            "status": trial_status(r, metric, max_t, states.get(tid)),
            f"best_{metric}": _best_value(r, metric, mode),
            "iterations": int(m.get("training_iteration", 0) or 0),
            "step": m.get("step"),
            "params": dict(r.config or {}),
            "path": r.path,
        })
    key = f"best_{metric}"
    sign = 1.0 if mode == "min" else -1.0
    rows.sort(key=lambda row: (row[key] is None, sign * row[key] if row[key] is not None else 0.0))
    return rows


def short_name(key: str) -> str:
    """train.lr -> lr, model.meta_modules.14x14.width -> mm.14x14.width (table headers)."""
    key = key.replace("model.meta_modules.", "mm.")
    for section in ("model.", "train.", "data."):
        key = key.removeprefix(section)
    return key


def print_table(rows: list[dict[str, Any]], metric: str, top: int, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    shown = rows[:top]
    params = []
    for row in shown:
        for k in row["params"]:
            if k not in params:
                params.append(k)
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("trial")
    table.add_column("status")
    table.add_column(f"best {metric}", justify="right")
    table.add_column("reports", justify="right")
    for k in params:
        table.add_column(short_name(k), justify="right", overflow="fold")
    for i, row in enumerate(shown, 1):
        v = row[f"best_{metric}"]
        cells = [str(i), row["trial_id"], row["status"], "-" if v is None else f"{v:.3f}", str(row["iterations"])]
        for k in params:
            x = row["params"].get(k)
            cells.append("" if x is None else (f"{x:.3g}" if isinstance(x, float) else str(x)))
        table.add_row(*cells)
    console = Console()
    if not console.is_terminal:  # a log file: wide enough for every column
        console = Console(width=max(120, min(400, 30 + 13 * (len(params) + 5))))
    console.print(table)


# ---------------------------------------------------------------------------------------------
# The export itself


def export_search(exp_dir: str, *, tracking_uri: str | None = None, iwae_k: int | None = None,
                  limit: int | None = None, device: str | None = None, data_dir: str | None = None,
                  log_mlflow: bool = True, progress: bool = False, grid: Any = None,
                  print_results: bool = True) -> dict[str, Any]:
    """Copy the best checkpoint to EXP_DIR/best, evaluate it, write summary.json, log to MLflow."""

    from matnet.checkpoint import load_checkpoint
    from matnet.data import load_split
    from matnet.device import resolve_device
    from matnet.evaluate import evaluate_iwae

    from . import tracking

    info = read_search_info(exp_dir)
    space = load_saved_space(exp_dir, info)
    spec = space.spec
    metric, mode = spec.experiment.metric, spec.experiment.mode
    max_t = space.reports_per_trial()
    grid = grid if grid is not None else result_grid(exp_dir)
    rows = trial_rows(grid, metric, mode, max_t)
    scored = [r for r in grid if _best_value(r, metric, mode) is not None]
    if not scored:
        failed = [r for r in grid if r.error is not None]
        if failed:
            lines = [ln for ln in str(failed[0].error).strip().splitlines() if ln.strip()]
            raise ExportError(f"{exp_dir}: no trial reported {metric}; {len(failed)} of {len(rows)} trials failed, "
                              f"e.g. {Path(failed[0].path).name.split('_')[2]}: {lines[-1] if lines else 'see error.txt'} "
                              f"(details in each trial's error.txt)")
        raise ExportError(f"{exp_dir}: no trial reported {metric} yet, so there is nothing to export; "
                          f"resume the search (python -m search.run SPACE --resume) and let trials report")
    sign = 1.0 if mode == "min" else -1.0
    best = min(scored, key=lambda r: sign * _best_value(r, metric, mode))
    ckpt = best.get_best_checkpoint(metric, mode) if best.best_checkpoints else best.checkpoint
    if ckpt is None:
        raise ExportError(f"{best.path}: the best trial kept no checkpoint; raise experiment.keep_checkpoints")

    best_dir = join(exp_dir, "best")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "best"
        ckpt.to_directory(str(local))
        upload_dir(local, best_dir)
    local_best = best_dir if not is_uri(best_dir) else None

    # IWAE evaluation of best/ (K from the space file unless given).
    ex = spec.export
    k = iwae_k or ex.iwae_k
    n_limit = ex.limit if limit is None else limit
    dev = resolve_device(device or ex.device)
    with tempfile.TemporaryDirectory() as tmp:
        src = local_best
        if src is None:
            src = str(Path(tmp) / "best")
            ckpt.to_directory(src)
        model, cfg, meta = load_checkpoint(src, dev)
        if data_dir:
            cfg = cfg.override("data.data_dir", data_dir)
        split = load_split(cfg.data, ex.split)
        t0 = time.monotonic()
        evaluation = evaluate_iwae(model, split, k, n_limit, ex.batch_size, dev, ex.rows_per_pass, 0,
                                   cfg.train.amp, progress=progress)
        evaluation["seconds"] = round(time.monotonic() - t0, 2)
        evaluation["split"] = ex.split
        figs = Path(tmp) / "figures"
        figs.mkdir()
        files = tracking.render_trial_figures(
            src, figs, ex.sample_images, f"best: {ex.split} per-layer KL (IWAE run, k={k})",
            evaluation["kl_per_layer"])
        (figs / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n")
        files.append(figs / "evaluation.json")
        upload_dir(figs, join(exp_dir, "figures"))

        best_metrics = dict(meta.get("metrics", {}))
        best_id = (best.metrics or {}).get("trial_id") or Path(best.path).name
        summary = {
            "search": info.get("name"),
            "space_file": info.get("space_file"),
            "experiment_dir": exp_dir,
            "metric": metric,
            "mode": mode,
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "best": {
                "trial_id": best_id,
                "status": trial_status(best, metric, max_t, _trial_states(grid).get(best_id)),
                f"best_{metric}": _best_value(best, metric, mode),
                "checkpoint": best_dir,
                "checkpoint_step": meta.get("step"),
                "params": dict(best.config or {}),
                "config": cfg.to_dict(),
                "metrics": best_metrics,
                "evaluation": evaluation,
            },
            "top_trials": [{k2: v for k2, v in r.items() if k2 != "path"} for r in rows[:ex.top_trials]],
            "trials": {s: sum(1 for r in rows if r["status"] == s) for s in sorted({r["status"] for r in rows})},
            "mlflow": {"tracking_uri": tracking_uri or info.get("tracking_uri"),
                       "parent_run_id": info.get("parent_run_id"),
                       "experiment": info.get("mlflow_experiment")},
        }
        summary["trials"]["total"] = len(rows)
        text = json.dumps(summary, indent=2, default=str) + "\n"
        write_text(join(exp_dir, SUMMARY), text)

        if log_mlflow and info.get("parent_run_id"):
            uri = tracking_uri or info.get("tracking_uri")
            client = tracking._client(uri)
            run_id = info["parent_run_id"]
            from mlflow.entities import Metric, Param, RunTag
            ts = int(time.time() * 1000)
            prefix = f"best_{ex.split}"
            ms = [Metric(f"{prefix}_nll_nats", evaluation["nll_nats"], ts, 0),
                  Metric(f"{prefix}_nll_stderr", evaluation["nll_stderr"], ts, 0),
                  Metric(f"{prefix}_elbo_nats", evaluation["elbo_nats"], ts, 0)]
            if "bpd" in evaluation:
                ms.append(Metric(f"{prefix}_bpd", evaluation["bpd"], ts, 0))
            if summary["best"][f"best_{metric}"] is not None:
                ms.append(Metric(f"best_{metric}", summary["best"][f"best_{metric}"], ts, 0))
            existing = client.get_run(run_id).data.params
            params = [Param(k2, str(v)) for k2, v in {"iwae_k": k, "iwae_images": evaluation["n_images"]}.items()
                      if k2 not in existing]
            tags = [RunTag("best_trial_id", best_id), RunTag("best_checkpoint", best_dir)]
            if existing.get("iwae_k", str(k)) != str(k):
                tags.append(RunTag("iwae_k_latest", str(k)))
            client.log_batch(run_id, metrics=ms, params=params, tags=tags)
            for f in files:
                client.log_artifact(run_id, str(f), "best/figures")
            summary_file = Path(tmp) / SUMMARY
            summary_file.write_text(text)
            client.log_artifact(run_id, str(summary_file))
            with tempfile.TemporaryDirectory() as ck:
                ck_local = Path(ck) / "checkpoint"
                shutil.copytree(src, ck_local, ignore=shutil.ignore_patterns("train_state.pt"))
                client.log_artifacts(run_id, str(ck_local), "best/checkpoint")

    if print_results:
        print_table(rows, metric, ex.top_trials, f"Best trials of {info.get('name')} (by {metric}, {mode})")
        b = summary["best"]
        bpd = f", {evaluation['bpd']:.4f} bits/dim" if "bpd" in evaluation else ""
        print(f"best trial {b['trial_id']}: {metric} {b[f'best_{metric}']:.3f} at step {b['checkpoint_step']}; "
              f"{ex.split} IWAE (k={k}, {evaluation['n_images']} images): {evaluation['nll_nats']:.3f} "
              f"+- {evaluation['nll_stderr']:.3f} nats{bpd}")
        use = ("copy it to a local directory for python -m matnet.evaluate / matnet.sample" if is_uri(best_dir)
               else f"python -m matnet.evaluate {best_dir}; python -m matnet.sample {best_dir}")
        print(f"best checkpoint: {best_dir}   ({use})")
        print(f"summary: {join(exp_dir, SUMMARY)}")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m search.export", description=__doc__.split("\n\n")[0])
    p.add_argument("experiment_dir", help="a search's directory: STORAGE/NAME (local path or URI)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: the one the search logged to)")
    p.add_argument("--samples", type=int, help="IWAE importance samples K (default: export.iwae_k of the space)")
    p.add_argument("--limit", type=int, help="images to evaluate (default: export.limit of the space; 0: all)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N (default: export.device of the space)")
    p.add_argument("--data-dir", help="where the data set's files are (default: the search's)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--progress", action="store_true", help="show a progress bar during the IWAE evaluation")
    args = p.parse_args(argv)
    exp_dir = args.experiment_dir if is_uri(args.experiment_dir) else str(Path(args.experiment_dir).resolve())
    if args.samples is not None and args.samples < 1:
        raise ExportError(f"--samples must be >= 1, got {args.samples}")
    export_search(exp_dir, tracking_uri=args.tracking_uri, iwae_k=args.samples, limit=args.limit,
                  device=args.device, data_dir=args.data_dir, log_mlflow=not args.no_mlflow,
                  progress=args.progress)
    return 0


def run_cli(main_fn, argv: list[str] | None = None, extra: tuple[type[BaseException], ...] = ()) -> None:
    """matnet.cli.run, with the search platform's own one-line errors too."""
    from matnet import cli

    from .spaces import SpaceError
    cli.run(main_fn, argv, (SpaceError, ExportError) + extra)


if __name__ == "__main__":
    run_cli(main)
