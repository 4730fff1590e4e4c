import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread_torch():
    """Tests run on 2 shared cores; one intra-op thread keeps timings stable and results identical."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def digits():
    from robust_glo.data import load_dataset

    return load_dataset("digits")
