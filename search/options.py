"""search.run's command line: its flags, and the options they make for `search.run.run_search`."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from matnet.cli import ArgumentParser

from .store.errors import RunError
from .tune import strategies
from .store.places import DEFAULT_STORAGE
from .tune.cluster import cluster_address

DESCRIPTION = ("Run a search: a YAML search space -> a search strategy (Optuna + a Ray Tune scheduler) on Ray Tune "
               "-> MLflow -> the best checkpoint.")

@dataclass
class SearchOptions:
    """How to run a space: the command line's flags (None: the space file's value or the default)."""

    storage: str | None = None
    address: str | None = None
    shared_storage: bool = False
    tracking_uri: str | None = None
    optuna_storage: str | None = None
    name: str | None = None
    num_samples: int | None = None
    max_concurrent: int | None = None
    resume: bool = False
    trust_state: bool = False
    export: bool = True
    num_gpus: int | None = None
    strategy: str | None = None  # a registered strategy instead of the space's (search.bench compare)


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m search.run", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="search strategies (a space file's `strategy: NAME`):\n" + strategies.help_text())
    p.add_argument("space", help="a search-space YAML file (e.g. spaces/quickstart.yaml)")
    p.add_argument("--address", help="an existing Ray cluster: auto, ray://HOST:10001 or HOST:6379 (default: "
                                     "RAY_ADDRESS, else a private local Ray)")
    p.add_argument("--num-samples", type=int, help="trials (default: experiment.num_samples)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: experiment.max_concurrent)")
    p.add_argument("--storage", help=f"where searches are kept (default: ./{DEFAULT_STORAGE}; a URI or a shared "
                                     f"absolute path on a cluster)")
    p.add_argument("--shared-storage", action="store_true",
                   help="confirm that the absolute --storage path is mounted at the same place on every node")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: mlflow.tracking_uri, MLFLOW_TRACKING_URI, "
                                          "or sqlite:///mlflow.db)")
    p.add_argument("--optuna-storage", help="where the Optuna study is kept: a database URL without a password "
                                            "(PGPASSWORD), or a journal file (default: sampler.storage, "
                                            "OPTUNA_STORAGE, or optuna.journal in the search's folder)")
    p.add_argument("--name", help="the search's name (default: experiment.name)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted search STORAGE/NAME")
    p.add_argument("--dry-run", action="store_true", help="validate the file and print sampled configurations")
    p.add_argument("--no-export", action="store_true", help="skip the export of the best checkpoint at the end")
    p.add_argument("--trust-state", action="store_true",
                   help="resume even though Ray Tune's state files carry no signature of this machine's key "
                        "(they are unpickled: only for a folder you know is yours)")
    p.add_argument("--num-gpus", type=int, help="GPUs the private local Ray offers trials (default: the GPUs torch "
                                                "sees; not with --address: a cluster declares its own)")
    return p


def options_of(args: argparse.Namespace) -> SearchOptions:
    for flag, value, least in (("--num-samples", args.num_samples, 1), ("--max-concurrent", args.max_concurrent, 0)):
        if value is not None and value < least:
            raise RunError(f"{flag} must be at least {least}, got {value}")
    if args.num_gpus is not None and (args.num_gpus < 0 or cluster_address(args.address)):
        raise RunError("--num-gpus must be >= 0, and only for the private local Ray (a cluster's nodes declare "
                       "their GPUs with ray start --num-gpus)")
    if args.name is not None and not args.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise RunError(f"--name {args.name!r}: use letters, digits, '_', '.', '-'")
    return SearchOptions(storage=args.storage, address=args.address, shared_storage=args.shared_storage,
                         tracking_uri=args.tracking_uri, optuna_storage=args.optuna_storage, name=args.name,
                         num_samples=args.num_samples, max_concurrent=args.max_concurrent, resume=args.resume,
                         trust_state=args.trust_state, export=not args.no_export, num_gpus=args.num_gpus)
