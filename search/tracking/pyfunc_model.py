"""The MLflow model of a search's best checkpoint, defined from code (MLflow's "models from code").

MLflow keeps this file beside the checkpoint folder in the model's artifacts and runs it to load the
model: nothing is unpickled (a pickled Python model would run whatever code the pickle names); the
weights are read from model.safetensors by matnet.checkpoint. The file imports MLflow, PyTorch and
matnet only, so it loads wherever matnet is installed.

    model = mlflow.pyfunc.load_model("models:/matnet-quickstart@champion")
    scores = model.predict(images, params={"iwae_k": 100})

`images`: float32 [N, C, H, W] as the model reads them (0/1 for binarized data, 0..255 for 8-bit
colour). Per image: `elbo_nats`, the negative ELBO (one sample, analytic KLs), and `nll_nats`, the
negative IWAE bound with `iwae_k` importance samples (an upper bound on -log p(x), in nats). A
conditional MatNet (data.task=impute) scores only with masks: use `python -m matnet.impute`.
"""
from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel

CHECKPOINT = "checkpoint"  # the key of the checkpoint folder in the model's artifacts


class MatNetModel(PythonModel):
    def load_context(self, context):
        from matnet.build import is_conditional
        from matnet.checkpoint import load_checkpoint

        self.model, self.config, self.meta = load_checkpoint(context.artifacts[CHECKPOINT], "cpu")
        self.conditional = is_conditional(self.model)

    # An ndarray hint: MLflow infers no input schema from it (the logged signature says what goes in), and
    # knows the method is typed.
    def predict(self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None) -> Any:
        import pandas as pd
        import torch

        from matnet.device import seeded_rng
        from matnet.objectives import iwae_bound

        if self.conditional:
            raise ValueError("a conditional MatNet scores images only with masks of the known pixels; use "
                             "python -m matnet.impute on its checkpoint")
        k = int((params or {}).get("iwae_k", 1))
        if k < 1:
            raise ValueError(f"iwae_k must be >= 1, got {k}")
        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        shape = tuple(self.meta["image_shape"])
        if x.ndim != 4 or tuple(x.shape[1:]) != shape:
            raise ValueError(f"images must be float32 [N, {', '.join(map(str, shape))}], got {list(x.shape)}")
        with seeded_rng(0), torch.no_grad():  # the same images score the same
            bound = iwae_bound(self.model, x, k)
        return pd.DataFrame({"elbo_nats": (-bound.elbo).double().numpy(), "nll_nats": (-bound.iwae).double().numpy()})


mlflow.models.set_model(MatNetModel())
