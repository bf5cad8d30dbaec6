"""A compiled search space: what every trial of a search starts from, the nodes it draws, and the
Optuna side of it (the define-by-run function, the sampler, points to try first)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from matnet.config import Config

from .errors import fail
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

    def base_config(self, overrides: dict[str, Any] | None = None) -> Config:
        """The preset with the file's data and fixed keys, and `overrides` after them (they win), built
        once: a trial's config is built this way at every suggest."""
        from matnet.presets import preset
        return preset(self.settings.base).with_overrides({**self.base_overrides, **(overrides or {})})

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
        return self.base_config(self.overrides(params))

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

    def sample(self, n: int, seed: int | None = None, sampler: Any = None) -> list[dict[str, Any]]:
        """n parameter sets as `sampler` (default: Optuna's RandomSampler with `seed`, else the space's
        sampler.seed) would draw them with no results to learn from, points_to_evaluate first."""
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if sampler is None:
            sampler = optuna.samplers.RandomSampler(seed=self.settings.sampler.seed if seed is None else seed)
        study = optuna.create_study(sampler=sampler)  # nothing is told a value: the direction plays no part
        for point in self.points():
            study.enqueue_trial(point)
        out = []
        for _ in range(n):
            trial = study.ask()
            self.suggest(trial)
            out.append(dict(trial.params))
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return out

    def valid_samples(self, n: int, seed: int) -> list[dict[str, Any]]:
        """n random parameter sets (points_to_evaluate first) that each make a config matnet can train;
        SpaceError when too few draws do."""
        from matnet.config import ConfigError
        drawn = self.sample(4 * n + 50, seed=seed)
        kept = []
        for params in drawn:
            try:
                self.valid_trial_config(params)
            except ConfigError:
                continue
            kept.append(params)
            if len(kept) == n:
                return kept
        raise fail(self.path, "search", f"only {len(kept)} of {len(drawn)} random draws make a config matnet can "
                                        f"train; check the space with --dry-run")

    # ---- the file's parameters and strategy --------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Every scalar parameter as the file writes it, by name (a repeat block's fields included,
        under their per-scale names)."""
        return dict(self.distributions())  # a node's distribution is the file's own parameter entry

    def sometimes_drawn(self) -> list[str]:
        """The parameters some trials draw and others do not (a `when:`, a repeat block's drawn count)."""
        from .nodes import RepeatNode
        always: set[str] = set()
        for node in self.nodes:
            if node.condition.clauses:
                continue
            if not isinstance(node, RepeatNode):
                always.add(node.name)
                continue
            if isinstance(node.count, int):
                fewest = node.count
            else:
                always.add(node.count_name)
                fewest = min(node.count.choices) if hasattr(node.count, "choices") else node.count.low
            for item in node.items[len(node.items) - int(fewest):]:
                always.update(slot.name for slot in item.slots if slot.dist is not None and not slot.condition.clauses)
        return [name for name in self.distributions() if name not in always]

    def key_of(self, name: str) -> str | None:
        """The config key a parameter sets (None: a helper parameter, or a field of a repeat block)."""
        for node in self.nodes:
            if getattr(node, "name", None) == name and hasattr(node, "dist"):
                return node.key
        return None

    def strategy_options(self, model: Any) -> Any:
        """The options a strategy takes, from `strategy: {name: ..., OPTION: ...}`, validated by the
        strategy's pydantic `model`; SpaceError naming the option."""
        from pydantic import ValidationError
        raw = self.settings.strategy if isinstance(self.settings.strategy, dict) else {}
        try:
            return model(**{k: v for k, v in raw.items() if k != "name"})
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise fail(self.path, f"strategy.{where}", f"{err['msg']}; fix the value (known options: "
                                                      f"{', '.join(model.model_fields)})") from None

    # ---- budget ----------------------------------------------------------------------------------
    def reports_per_trial(self) -> int:
        """How many results a full trial reports (ASHA's max_t): scheduler.max_t, else the fixed
        training budget's evaluations (matnet.budget)."""
        if self.settings.scheduler.max_t is not None:
            return self.settings.scheduler.max_t
        from matnet.budget import budget
        return budget(self.base_config()).evaluations
