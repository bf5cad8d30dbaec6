"""A compiled search space: what every trial of a search starts from, the nodes it draws, and the
Optuna side of it (the define-by-run function, the sampler, points to try first)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from matnet.config import Config

from .nodes import Distribution, Node, decode, encode
from .schema import CategoricalParam, SpaceFile


@dataclass
class Space:
    path: str                          # the file, as given (messages name it)
    settings: SpaceFile                # the validated file
    raw_text: str                      # the file as written (saved beside the search: space.yaml)
    base_overrides: dict[str, Any]     # data + fixed as dotted keys, data_dir made absolute
    nodes: list[Node]                  # search:, compiled, in file order

    @property
    def name(self) -> str:
        return self.settings.experiment.name

    def base_config(self) -> Config:
        from matnet.presets import preset
        return preset(self.settings.base).with_overrides(self.base_overrides)

    def distributions(self) -> dict[str, Distribution]:
        """Every Optuna parameter a trial may have, by name, with its distribution."""
        out: dict[str, Distribution] = {}
        for node in self.nodes:
            out.update(node.distributions())
        return out

    # ---- a trial ---------------------------------------------------------------------------------
    def suggest(self, trial: Any) -> None:
        """The define-by-run function: draws this trial's parameters in file order."""
        values: dict[str, Any] = {}
        for node in self.nodes:
            node.draw(trial, values)

    def overrides(self, params: dict[str, Any]) -> dict[str, Any]:
        """A trial's parameters (as Optuna stored them) -> dotted config overrides. A later entry
        that sets the same key under a `when` wins when it was drawn."""
        dists = self.distributions()
        values = {name: decode(dists[name], v) if name in dists else v for name, v in params.items()}
        out: dict[str, Any] = {}
        for node in self.nodes:
            out.update(node.override(values))
        return out

    def trial_config(self, params: dict[str, Any]) -> Config:
        return self.base_config().with_overrides(self.overrides(params))

    def valid_trial_config(self, params: dict[str, Any]) -> Config:
        """The trial's config, validated as matnet.train validates it (matnet/validate.py): a config
        this accepts can start training; ConfigError (one line) otherwise."""
        from matnet.validate import validate
        config = self.trial_config(params)
        validate(config)
        return config

    # ---- Optuna ----------------------------------------------------------------------------------
    def points(self) -> list[dict[str, Any]]:
        """points_to_evaluate with categorical values encoded as Optuna stores them."""
        dists = self.distributions()
        return [{name: encode(v) if isinstance(dists.get(name), CategoricalParam) else v for name, v in point.items()}
                for point in self.settings.points_to_evaluate]

    def make_sampler(self):
        import optuna
        s = self.settings.sampler
        if s.type == "random":
            return optuna.samplers.RandomSampler(seed=s.seed)
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.n_startup_trials,
                                              multivariate=s.multivariate, group=s.group and s.multivariate,
                                              constant_liar=True)

    def sample(self, n: int, seed: int | None = None) -> list[dict[str, Any]]:
        """n parameter sets as the sampler would draw them (no trials are run), points first."""
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = self.make_sampler() if seed is None else optuna.samplers.RandomSampler(seed=seed)
        direction = "minimize" if self.settings.experiment.mode == "min" else "maximize"
        study = optuna.create_study(sampler=sampler, direction=direction)
        for point in self.points():
            study.enqueue_trial(point)
        out = []
        for _ in range(n):
            trial = study.ask()
            self.suggest(trial)
            out.append(dict(trial.params))
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return out

    # ---- budget ----------------------------------------------------------------------------------
    def reports_per_trial(self) -> int:
        """How many results a full trial reports (ASHA's max_t): scheduler.max_t, else the fixed
        training budget's evaluations (matnet.budget)."""
        if self.settings.scheduler.max_t is not None:
            return self.settings.scheduler.max_t
        from matnet.budget import budget
        return budget(self.base_config()).evaluations
