"""pbt: population-based training (Jaderberg et al. 2017) with Ray Tune's PopulationBasedTraining.

The population is experiment.num_samples trials drawn at random from the space. Every
`perturbation_interval` reports, a trial in the bottom `quantile_fraction` of the population
continues from the latest checkpoint of one in the top fraction (exploit) with that trial's
parameters mutated (explore: the parameters the space marks `mutable: true`, each multiplied by 0.8
or 1.2, moved to a neighbouring choice, or redrawn with `resample_probability`, then put back inside
its bounds and step). Only settings a run can change while it goes on from a checkpoint may be
mutable (matnet.runfolder.CONTINUABLE_KEYS: the learning rate, the KL warm-up, the inference
regularizer's weight, the gradient clip): a layout parameter would need a checkpoint of another shape.

Each exploitation is recorded where a user looks: in trials.json (a trial's `lineage`), as tags of the
trial's MLflow run, and in the summary the search prints. Trials change parameters as they train, so
the Optuna study records none of them (Optuna's trials have fixed parameters): the study says so.
"""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ...space.errors import fail
from ...space.nodes import encode
from ...space.schema import CategoricalParam, FloatParam, IntParam
from . import register
from .base import Strategy


class PbtOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    perturbation_interval: int = Field(2, ge=1)      # reports between exploit/explore decisions
    quantile_fraction: float = Field(0.25, gt=0, le=0.5)
    resample_probability: float = Field(0.25, ge=0, le=1)
    # Synchronous PBT: every trial waits at each decision point until the whole population is there,
    # so the decisions follow from the values alone (slower: a waiting trial pauses at a checkpoint).
    synch: bool = False


@register
class Pbt(Strategy):
    name = "pbt"
    summary = "population-based: the weak go on from the strong, mutated"
    uses_study = False
    simulable = False  # a trial's curve depends on whose checkpoint it continued from
    Options: ClassVar[type[BaseModel]] = PbtOptions

    def check(self, space: Any) -> None:
        from matnet.runfolder import CONTINUABLE_KEYS

        mutable = {name: p for name, p in space.params().items() if getattr(p, "mutable", False)}
        if not mutable:
            raise fail(space.path, "search", f"pbt mutates the parameters marked mutable: true, and none is; mark "
                                             f"some of {', '.join(CONTINUABLE_KEYS)}")
        for name, param in mutable.items():
            key = space.key_of(name)
            if key not in CONTINUABLE_KEYS:
                raise fail(space.path, f"search.{name}.mutable", f"{key or name} cannot change during a trial (a "
                                                                 f"checkpoint cannot change shape, data or budget); "
                                                                 f"pbt can mutate {', '.join(CONTINUABLE_KEYS)}")
            if param.when is not None:
                raise fail(space.path, f"search.{name}.mutable", "a conditional parameter cannot be mutable; drop when")
        sometimes = space.sometimes_drawn()
        if sometimes:
            raise fail(space.path, f"search.{sometimes[0]}", "drawn by some trials only, but pbt's population must "
                                                             "share one set of parameters (a trial clones another's); "
                                                             "drop its when:, or fix the repeat block's count")
        if space.settings.experiment.num_samples < 2:
            raise fail(space.path, "experiment.num_samples", "pbt needs a population of at least 2 trials")
        options = self.options(space)
        if options.perturbation_interval >= space.reports_per_trial():
            raise fail(space.path, "strategy.perturbation_interval",
                       f"{options.perturbation_interval} reports is not less than the {space.reports_per_trial()} "
                       f"a trial makes, so nothing would be exploited; lower it")

    def options(self, space: Any) -> PbtOptions:
        return space.strategy_options(PbtOptions)

    def searcher(self, space: Any, study: Any, seed: int | None = None) -> Any:
        """The population: configurations drawn at random (PBT works with Tune's own variant
        generator only, which runs the given points)."""
        from ray.tune.search import BasicVariantGenerator
        s = space.settings
        population = space.valid_samples(s.experiment.num_samples, s.sampler.seed if seed is None else seed)
        return BasicVariantGenerator(points_to_evaluate=population, max_concurrent=s.experiment.max_concurrent,
                                     random_state=s.sampler.seed if seed is None else seed)

    def checkpoints_to_keep(self, space: Any) -> None:
        """All of them. Ray 2.60's PBT registers an exploited trial's latest checkpoint a second time (it
        asks a function trainable to save, which hands back the checkpoint it reported), and with a
        bound on kept checkpoints Tune then deletes that folder twice and logs an ERROR for the
        second. So budget the disk: population x reports x one checkpoint."""
        return None

    def param_space(self, space: Any) -> dict[str, Any]:
        """Every parameter, as a placeholder the population's drawn points replace (Tune's variant
        generator runs only points whose keys its param_space has)."""
        return {name: None for name in space.distributions()}

    def scheduler(self, space: Any, seed: int | None = None) -> Any:
        import random

        from ray.tune.schedulers import PopulationBasedTraining

        random.seed(space.settings.sampler.seed if seed is None else seed)  # PBT draws with Python's generator
        options, experiment = self.options(space), space.settings.experiment
        dists = {name: p for name, p in space.params().items() if getattr(p, "mutable", False)}
        return PopulationBasedTraining(
            time_attr="training_iteration", metric=experiment.metric, mode=experiment.mode,
            perturbation_interval=options.perturbation_interval, quantile_fraction=options.quantile_fraction,
            resample_probability=options.resample_probability,
            hyperparam_mutations={name: mutation(d) for name, d in dists.items()},
            custom_explore_fn=Clamp(dists), log_config=False, synch=options.synch)

    def describe(self, space: Any) -> str:
        o = self.options(space)
        mutable = [n for n, p in space.params().items() if getattr(p, "mutable", False)]
        return (f"{self.name}: a population of {space.settings.experiment.num_samples}, exploit/explore every "
                f"{o.perturbation_interval} reports (bottom {o.quantile_fraction:.0%} <- top), mutating "
                f"{', '.join(mutable)}")


def mutation(dist: Any) -> Any:
    """What PBT redraws a parameter from: a Tune domain over its bounds, or the list of its choices
    (PBT then moves to a neighbouring choice)."""
    from ray import tune
    if isinstance(dist, CategoricalParam):
        return [encode(c) for c in dist.choices]
    if isinstance(dist, FloatParam):
        if dist.step:
            return tune.quniform(dist.low, dist.high, dist.step)
        return tune.loguniform(dist.low, dist.high) if dist.log else tune.uniform(dist.low, dist.high)
    if dist.log:
        return tune.lograndint(dist.low, dist.high + 1)
    return tune.qrandint(dist.low, dist.high, dist.step)


class Clamp:
    """PBT's explore multiplies by 0.8 or 1.2, which can leave a parameter's bounds or step: put it back."""

    def __init__(self, dists: dict[str, Any]):
        self.dists = dists

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for name, dist in self.dists.items():
            if name in config and isinstance(dist, (FloatParam, IntParam)):
                config[name] = clamp(dist, config[name])
        return config


def clamp(dist: Any, value: float) -> float | int:
    value = min(max(value, dist.low), dist.high)
    if dist.step:
        value = dist.low + round((value - dist.low) / dist.step) * dist.step
        value = min(value, dist.high)
    return int(round(value)) if isinstance(dist, IntParam) else float(value)
