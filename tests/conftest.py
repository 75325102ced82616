"""Shared test fixtures."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Small recurrent and complex ops are dominated by threading overhead on busy cores: run
    the test on one torch thread, and restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
