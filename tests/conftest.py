"""Shared fixtures: the tiny pipeline is loaded once per test session (it takes ~1 s)."""
import os

import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"  # every test runs offline, as CI does
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def tiny_pipe():
    import sdlab

    return sdlab.load_pipeline("tiny")
