"""qlife.methods.distill: the MLP student's initial weights come from its seed alone."""

from __future__ import annotations

import torch

from qlife.methods.distill import MLPStudent


def test_mlp_student_init_depends_on_its_seed_not_on_the_global_rng():
    a = MLPStudent(8, 4, 3, seed=5)
    torch.rand(100)  # whatever ran before (an import, another model) must not change the student
    state = torch.random.get_rng_state()
    b = MLPStudent(8, 4, 3, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)  # and the student leaves the global RNG alone
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = MLPStudent(8, 4, 3, seed=6)
    assert not torch.equal(a.net[0].weight, c.net[0].weight)
