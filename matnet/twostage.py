"""The two-stage conditional MatNet of the paper's occluder experiments: a second conditional MatNet
refines the first one's imputation.

Stage 1 is a plain conditional MatNet. Stage 2 has the same layout; its networks see, at the unknown
pixels, stage 1's guess instead of the data mean: its input is [known pixels + stage 1's imputation of
the unknown ones; mask] (and x itself for its inference network). The guess is the mean of
p_1(x_u | z_1, x_k) with z_1 drawn from stage 1's GENERATOR, p_1(z_1 | x_k): drawn from the prior, not
inferred, so stage 2's generator never sees x_u either.

The model is then p(x_u | x_k) = E_{z_1 ~ p_1(z_1 | x_k)} [ p_2(x_u | x_k, guess(z_1)) ], and stage 2's
eq. 6 bound with z_1 drawn from p_1 is a lower bound on its log-likelihood (Jensen over z_1); its
IWAE bound too (z_1 is part of each importance sample, with the prior as its proposal, so its density
cancels from the weight). Those are the figures this model reports.

Training (the choice): stage 2 trains on stage 1's DETACHED guess, and the loss is the sum of both
stages' bounds. Stage 1 thus stays a complete conditional MatNet of its own, trained for its own
likelihood; stage 2's gradient never pushes stage 1's imputations towards what suits stage 2. (Joint
training through the guess is the alternative; it couples the stages and costs a backward pass
through stage 1's generator.) Stage 1's bound enters the loss as the output's `penalty` (a loss term
that is not part of the reported bound), at full KL weight also during KL warm-up.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .conditional import ConditionalMatNet
from .config import ConfigError
from .sections import ModelConfig
from .model import MatNetOutput


class TwoStageMatNet(nn.Module):
    conditional = True

    def __init__(self, cfg: ModelConfig, image_shape: tuple[int, int, int]):
        super().__init__()
        self.cfg = cfg
        self.image_shape = tuple(image_shape)
        self.stage1 = ConditionalMatNet(cfg, image_shape)
        self.stage2 = ConditionalMatNet(cfg, image_shape)
        self.masks = None

    # The reported latent layers are stage 2's (its KLs make up the reported bound).
    @property
    def num_layers(self) -> int:
        return self.stage2.num_layers

    def layer_meta(self) -> list[int]:
        return self.stage2.layer_meta()

    def layer_names(self) -> list[str]:
        return self.stage2.layer_names()

    def meta_labels(self) -> dict[int, str]:
        return self.stage2.meta_labels()

    def set_data_mean(self, images: torch.Tensor) -> None:
        self.stage1.set_data_mean(images)
        self.stage2.set_data_mean(images)

    @torch.no_grad()
    def guess(self, x: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Stage 1's imputation from its generator alone (z_1 ~ p_1(z_1 | x_k)), detached."""
        return self.stage1.impute(x, known, mean=True)

    def forward(self, x: torch.Tensor, known: torch.Tensor) -> MatNetOutput:
        out2 = self.stage2(x, known, fill=self.guess(x, known))
        penalty = None
        if self.training:  # stage 1 learns from its own bound; evaluation needs stage 2's only
            penalty = -self.stage1(x, known).elbo
        return MatNetOutput(out2.log_px, out2.kl_per_layer, out2.log_ratio, out2.params, penalty, out2.latents)

    @torch.no_grad()
    def impute(self, x: torch.Tensor, known: torch.Tensor, mean: bool = True) -> torch.Tensor:
        return self.stage2.impute(x, known, mean, fill=self.guess(x, known))

    def sample(self, n: int, mean: bool = True) -> torch.Tensor:
        raise ConfigError("this checkpoint is a conditional MatNet (data.task=impute): it draws unknown pixels given "
                          "known ones; use python -m matnet.impute CKPT")
