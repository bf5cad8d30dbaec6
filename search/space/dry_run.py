"""`search.run SPACE --dry-run`: the space validated, summarised, and a few trial configs drawn as
the strategy's sampler draws its first ones (at random, from the space's seed), each built into its
model (no Ray, no training)."""
from __future__ import annotations

from typing import Any

from .errors import SpaceError
from .space import Space


def dry_run(space: Space, strategy: str, n: int = 3) -> None:
    """`strategy`: the line that describes the search's strategy (search/tune/strategies/)."""
    from matnet.build import build_model
    from matnet.config import ConfigError
    from matnet.data import dataset_info

    experiment, sampler = space.settings.experiment, space.settings.sampler
    print(f"{space.path}: valid.")
    print(f"  search {experiment.name}: {experiment.num_samples} trials, {experiment.max_concurrent or 'as many as fit'} "
          f"at once, {experiment.resources.cpu:g} CPU + {experiment.resources.gpu:g} GPU each; "
          f"{experiment.metric} ({experiment.mode})")
    print(f"  base preset {space.settings.base}; {space.reports_per_trial()} reports per trial; seed {sampler.seed}")
    print(f"  strategy {strategy}")
    print(f"  searched: {', '.join(space.distributions())}")
    shape = dataset_info(space.base_config().data.dataset)
    for i, params in enumerate(space.sample(n), 1):
        try:  # validated as matnet.train will: what the dry run calls valid can start training
            config = space.valid_trial_config(params)
        except ConfigError as e:
            raise SpaceError(f"{space.path}: search: sample {i} ({', '.join(f'{k}={_fmt(v)}' for k, v in params.items())}) "
                             f"is not a config matnet can train: {e}") from None
        model = build_model(config, shape)
        n_params = sum(t.numel() for t in model.parameters())
        layout = " + ".join(f"{m.modules}x[{m.scale}x{m.scale} w{m.width} z{m.latent_channels}]"
                            for m in config.model.meta_modules)
        print(f"  sample {i}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in params.items()))
        print(f"            -> {model.num_layers} latent layers, {n_params / 1e6:.2f}M parameters: "
              f"top z{config.model.top_latents} + {layout}")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
