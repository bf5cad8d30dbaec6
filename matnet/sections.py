"""The sections of a Config (config.py), as plain dataclasses: the model layout (section 2 of the paper,
its extensions of section 2.3), the data set and task, and the training settings. Each setting says
what it means and what its default is; every extension is off at its default.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MetaModule:
    """A group of modules that share one spatial scale (section 2.2, "meta modules").

    scale: side of the feature maps (7 for 7x7); 0 means fully connected.
    width: channels (or hidden units when fully connected) of the TD, BU and merge states.
    modules: number of TD modules, hence latent layers, at this scale.
    latent_channels: channels (or units) of each latent layer z_i at this scale.
    """

    scale: int
    width: int
    modules: int
    latent_channels: int


@dataclass
class ModelConfig:
    # Likelihood p(x|z): "bernoulli" (binary images), "gaussian" (dequantised 8-bit),
    # "logistic" (discretized logistic of Kingma et al., 8-bit).
    likelihood: str = "bernoulli"
    # z_0: the fully-connected top latent layer, prior N(0, I).
    top_latents: int = 32
    # Meta modules from the coarsest scale to the finest.
    meta_modules: list[MetaModule] = field(
        default_factory=lambda: [MetaModule(7, 64, 5, 4), MetaModule(14, 64, 5, 4)]
    )
    # Channels of the plain convolutions that feed data into the BU network and out of the TD network.
    data_width: int = 32
    # Trainable scale, initialised to this value, that multiplies every Gaussian mean and
    # log-variance (a fact from the author's code): keeps the initial KL small.
    param_scale_init: float = 0.2
    leak: float = 0.1  # negative slope of lrelu
    # --- extensions (section 2.3); each is off at its default, so older configs load unchanged ---
    # Gaussian mixture prior over z_0 with this many trainable components (0: the plain N(0, I)).
    mixture_components: int = 0
    # Train the mixture weights (as logits) instead of keeping them uniform 1/K as the paper does.
    mixture_learn_weights: bool = False
    # Weight of the penalty on the entropy of each input's posterior over the mixture components
    # (the paper's "slight penalty" that sharpens the clusters; the author's Omniglot run used 0.4).
    mixture_entropy_weight: float = 0.0
    # Local autoregressive head on p(x|z): a PixelCNN with this many masked layers (0: no head) ...
    ar_layers: int = 0
    # ... of this many channels each.
    ar_channels: int = 64
    # With data.task = impute: a second conditional MatNet of the same layout refines the first one's
    # imputation (the paper's two-stage occluder models; twostage.py).
    two_stage: bool = False


@dataclass
class DataConfig:
    # mnist | fashion-mnist | omniglot | cifar10 | image-folder (data.image_folder, 64x64 RGB)
    dataset: str = "mnist"
    # dynamic: resample a binarization every time an image is drawn; fixed: the standard fixed
    # binarization when its files are present (else a seeded stand-in, labelled as such);
    # none: keep 8-bit intensities (for gaussian / logistic likelihoods).
    binarize: str = "dynamic"
    data_dir: str = "data"
    # Images taken from the end of the training split to form the validation split.
    val_size: int = 10000
    # Use only the first N training images (0: all); for quick runs and tests.
    train_limit: int = 0
    # Validation images evaluated at each epoch end (0: all of the validation split).
    eval_limit: int = 2000
    # --- imputation (each setting is unused at its default task, so older configs load unchanged) ---
    # generate: model p(x) (an unconditional MatNet); impute: model p(x_u | x_k), the unknown pixels
    # given the known ones (a conditional MatNet, eqs. 3, 4, 6), under masks drawn as below.
    task: str = "generate"
    # Which pixels are unknown: quadrants | occluders | centre | the path of a mask image (white =
    # unknown). See matnet/masks.py.
    mask: str = "quadrants"
    # quadrants: how many of the four are visible (0: 1, 2 or 3, drawn per example, as the paper).
    visible_quadrants: int = 0
    # occluders: how many squares, and their side in pixels (the paper's faces: three of 20x20).
    occluders: int = 3
    occluder_size: int = 20
    # centre: the side of the hidden square (0: half the image side).
    centre_size: int = 0
    # dataset image-folder: the folder of photographs (CelebA, LSUN, ...), read at 64x64.
    image_folder: str = ""


@dataclass
class TrainConfig:
    batch_size: int = 100
    lr: float = 1e-3
    # Learning-rate warm-up: the rate rises linearly from lr / N to lr over the first N steps (0: none;
    # -1: N = 2 / (1 - beta2), 200 steps for beta2 = 0.99, but at most a tenth of the step budget and
    # never under 10 steps: schedule.warmup_steps). Adam's first updates rest on a second-moment
    # estimate of one or two gradients, so each weight moves by about +-lr whatever its gradient; in the
    # MatNet's unnormalised residual stacks (eqs. 7, 9, 10) those moves compound into exploding states
    # and KL spikes (docs/training.md).
    lr_warmup_steps: int = -1
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 1e-5  # L2, as the author's code
    # Epochs (counted from 0) at which the learning rate is halved.
    lr_halve_epochs: list[int] = field(default_factory=list)
    # KL warm-up: the KL weight rises linearly from 0 to 1 over this many steps (0: no warm-up).
    kl_warmup_steps: int = 0
    grad_clip: float = 100.0  # global gradient-norm clip (0: none)
    epochs: int = 100
    max_steps: int = 0  # 0: no step limit
    max_minutes: float = 0.0  # 0: no time limit
    # Evaluate, report and checkpoint every N steps (0: at the end of every epoch).
    eval_every_steps: int = 0
    seed: int = 0
    device: str = "auto"  # auto: cuda when available, else cpu
    # bf16 autocast on CUDA (ignored on CPU). Off by default: a MatNet step at the paper's sizes is
    # bound by kernel launches, not arithmetic, and bf16's casts add kernels (measured no faster on an
    # H100/H200); CUDA runs fp32 with TF32 matrix products instead.
    amp: bool = False
    # torch.compile the training step: "auto" (on for CUDA, with CUDA graphs; off on the CPU, where
    # compiling costs minutes and was not measured faster), "true" or "false".
    compile: str = "auto"
    # Stop with an error after this many consecutive non-finite updates (each is skipped).
    max_nonfinite_in_a_row: int = 50
    # Weight lambda of the inference regularizer (eq. 13): the free energy of samples drawn from the
    # model, maximised over the inference network only (0: off). Costs a draw from the model and one
    # more forward pass per step; with the autoregressive head the draw is pixel by pixel (slow).
    inference_reg_weight: float = 0.0
