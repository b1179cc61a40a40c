"""Fine-tuning's batching: length-grouped epochs."""

from __future__ import annotations

import numpy as np


def test_length_grouped_epochs_cover_every_index_once_and_pad_less():
    """finetune's batches: a permutation, ceil(n / b) batches, seeded; grouped batches are far more uniform in
    length than plain random ones, and their order is shuffled (not longest or shortest first)."""
    import torch

    from qlife.methods.finetune import epoch_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 64, size=1000).tolist()
    spread = {}
    for grouped in (False, True):
        batches = epoch_batches(lengths, 32, torch.Generator().manual_seed(0), grouped)
        flat = torch.cat(batches).tolist()
        assert sorted(flat) == list(range(1000)) and len(batches) == 32
        again = epoch_batches(lengths, 32, torch.Generator().manual_seed(0), grouped)
        assert all(torch.equal(a, b) for a, b in zip(batches, again))
        widths = [max(lengths[i] for i in b.tolist()) for b in batches]
        spread[grouped] = np.mean([np.ptp([lengths[i] for i in b.tolist()]) for b in batches])
        if grouped:
            assert widths != sorted(widths) and widths != sorted(widths, reverse=True)
    assert spread[True] < spread[False] / 5


def test_torch_threads_holds_and_restores_the_thread_count():
    import pytest
    import torch

    from qlife.methods.finetune import torch_threads

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("restored anyway")
    assert torch.get_num_threads() == before
