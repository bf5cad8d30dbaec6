import os

import pytest
import torch

# Two CPU cores on CI: keep torch from oversubscribing them when tests run training.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _state_key(tmp_path_factory):
    """The key that signs Ray Tune's state in search folders (search/provenance.py): the tests' own,
    not the user's ~/.config one. Subprocesses inherit it."""
    os.environ["MATNET_STATE_KEY_FILE"] = str(tmp_path_factory.mktemp("key") / "state-key")
