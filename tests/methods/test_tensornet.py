"""MPO / disentangler / SVD layers (qlife.methods.tensornet): exactness, parameter counts, identity, circuits."""

import numpy as np
import pytest
import torch
from torch import nn

from qlife.methods import tensornet as tn


def _linear(out_f, in_f, seed=0):
    torch.manual_seed(seed)
    lin = nn.Linear(in_f, out_f)
    return lin


def test_factorize_balanced_and_exact():
    assert tn.factorize(384, 3) == [8, 8, 6]
    assert tn.factorize(1536, 3) == [16, 12, 8]
    for n, d in ((384, 3), (1536, 4), (97, 2), (64, 3)):
        f = tn.factorize(n, d)
        assert len(f) == d and int(np.prod(f)) == n


def test_tt_svd_at_full_bond_dimension_reproduces_the_dense_layer():
    lin = _linear(48, 24)
    out_modes, in_modes = tn.factorize(48, 3), tn.factorize(24, 3)
    full = max(tn.max_ranks(out_modes, in_modes))
    mpo = tn.MPOLinear.from_linear(lin, in_modes, out_modes, full)
    assert torch.allclose(mpo.weight(), lin.weight, atol=1e-5)
    x = torch.randn(5, 7, 24)
    assert torch.allclose(mpo(x), lin(x), atol=1e-5)


def test_truncated_mpo_is_not_exact_and_error_falls_with_rank():
    lin = _linear(48, 24)
    om, im = tn.factorize(48, 3), tn.factorize(24, 3)
    errs = [float((tn.MPOLinear.from_linear(lin, im, om, r).weight() - lin.weight).detach().norm())
            for r in (1, 2, 4, 8)]
    assert errs[0] > 1e-2 and all(a >= b - 1e-6 for a, b in zip(errs, errs[1:]))


def test_parameter_counts_match_the_formula():
    lin = _linear(1536, 384)
    for method in tn.METHODS:
        for ratio in (2, 3, 5):
            plan = tn.plan_layer("x", lin, method, ratio)
            layer = tn.compress_linear(lin, plan)
            counted = sum(p.numel() for p in layer.parameters())
            assert counted == plan.parameters <= plan.dense / ratio
            if method == "svd":
                assert counted == plan.rank * (384 + 1536) + 1536
            else:
                r, o, i = plan.ranks, plan.out_modes, plan.in_modes
                cores = sum(r[k] * o[k] * i[k] * r[k + 1] for k in range(3))
                assert counted == cores + 1536 + plan.disentangler_parameters
    assert tn.plan_layer("x", lin, "mpo_disentangled", 3).disentangler_parameters == 6 * 6  # 7 qubits, 2 layers


def test_svd_is_the_best_rank_r_approximation():
    lin = _linear(40, 30)
    low = tn.LowRankLinear.from_linear(lin, 5)
    s = torch.linalg.svdvals(lin.weight.detach().double())
    err = float((low.b @ low.a - lin.weight).double().norm())
    assert err == pytest.approx(float(s[5:].pow(2).sum().sqrt()), rel=1e-4)


def test_disentangler_at_identity_leaves_the_output_unchanged():
    lin = _linear(48, 24)
    om, im = tn.factorize(48, 3), tn.factorize(24, 3)
    mpo = tn.MPOLinear.from_linear(lin, im, om, 3)
    x = torch.randn(9, 24)
    plain = mpo(x)
    layer = tn.TNLinear(mpo, tn.Disentangler(im, layers=3))
    assert torch.allclose(layer(x), plain, atol=1e-6)


def test_disentangler_is_orthogonal_and_couples_across_bonds():
    torch.manual_seed(1)
    dis = tn.Disentangler([6, 8], layers=2)  # 6 = 2 x 3 (1 qubit + a spectator 3), 8 = 3 qubits
    assert dis.n_qubits == 4 and dis.bond_gates() >= 1
    with torch.no_grad():
        dis.generators.normal_()
    d = dis(torch.eye(48))  # rows: images of the basis vectors
    assert torch.allclose(d @ d.T, torch.eye(48), atol=1e-5)
    assert not torch.allclose(d, torch.eye(48), atol=1e-3)


def test_exported_circuit_gives_the_torch_layers_unitary():
    torch.manual_seed(2)
    dis = tn.Disentangler([4, 8], layers=3)  # in = 32 = 5 qubits, no spectator: the layer is the unitary
    with torch.no_grad():
        dis.generators.normal_(0, 0.7)
    torch_u = dis(torch.eye(32)).detach().double().T.numpy()  # column k = D e_k
    assert np.abs(torch_u - dis.qubit_unitary()).max() < 1e-5
    text, res = tn.export_disentangler(dis)
    assert text.startswith("OPENQASM 3")
    assert res["qubits"] == 5 and res["two_qubit_gates"] > 0 and res["two_qubit_blocks"] == len(dis.pairs)
    assert tn.unitary_distance(tn.qasm_unitary(text), torch_u) < 1e-5


def test_exported_circuit_with_a_spectator_mode():
    torch.manual_seed(3)
    dis = tn.Disentangler([6, 8], layers=2)
    with torch.no_grad():
        dis.generators.normal_()
    text, _ = tn.export_disentangler(dis)
    assert tn.unitary_distance(tn.qasm_unitary(text), dis.qubit_unitary()) < 1e-5
    # the torch layer on the qubit subspace (spectator digit 0) is that unitary
    dims, axes = dis.dims, dis.qubit_axes
    basis = torch.zeros(16, *dims)
    for k in range(16):
        bits = [(k >> (3 - p)) & 1 for p in range(4)]
        idx = [0] * len(dims)
        for p, a in enumerate(axes):
            idx[a] = bits[p]
        basis[(k, *idx)] = 1.0
    out = dis(basis.reshape(16, 48)).reshape(16, *dims)
    u = torch.stack([out[(slice(None), *[slice(None) if a in axes else 0 for a in range(len(dims))])]
                     .reshape(16, -1)[j] for j in range(16)], 1)
    assert np.abs(u.detach().double().numpy() - dis.qubit_unitary()).max() < 1e-5


def test_fit_lowers_the_layer_error_and_trains_the_disentangler():
    lin = _linear(48, 24)
    model = nn.Sequential(lin)
    dense = {"0": lin}
    x = torch.randn(256, 24) @ torch.randn(24, 24)  # correlated inputs
    import copy

    m = copy.deepcopy(model)
    m[0] = tn.compress_linear(lin, tn.plan_layer("0", lin, "mpo_disentangled", 3))
    out = tn.fit_layers(m, dense, {"0": x}, steps=60, seed=0)
    row = out["layers"]["0"]
    assert row["relative_error_after"] < row["relative_error_before"]
    assert m[0].disentangler.generators.abs().sum() > 0


def test_compressed_teacher_round_trips_through_load_teacher(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    from qlife.classifiers import load_teacher

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, num_labels=2)
    model = BertForSequenceClassification(cfg).eval()
    from qlife.methods.pruning import linear_targets

    plans = tn.compress_model(model, "mpo_disentangled", 2.0, linear_targets(model, ["ffn", "attention"]), sites=2)
    assert len(plans) == 2 * 2 + 2 * 4
    with torch.no_grad():
        for layer in tn.compressed_layers(model).values():
            layer.disentangler.generators.normal_()
    ids = torch.randint(0, 50, (3, 7))
    before = model(input_ids=ids).logits
    model.save_pretrained(tmp_path)
    again = load_teacher(tmp_path)
    assert torch.allclose(again(input_ids=ids).logits, before, atol=1e-5)
    assert sum(p.numel() for p in again.parameters()) == sum(p.numel() for p in model.parameters())


def test_site_by_site_contraction_and_inference_cache_agree_with_the_dense_product():
    torch.manual_seed(4)
    lin = _linear(48, 24)
    om, im = tn.factorize(48, 3), tn.factorize(24, 3)
    layer = tn.TNLinear(tn.MPOLinear.from_linear(lin, im, om, 4), tn.Disentangler(im, layers=2))
    with torch.no_grad():
        layer.disentangler.generators.normal_()
    x = torch.randn(6, 24)
    train_out = layer(x)  # grad enabled: D x, then the MPO
    assert torch.allclose(layer.mpo.contract_sites(layer.disentangler(x)), train_out, atol=1e-5)
    layer.eval()
    with torch.no_grad():
        cached = layer(x)
        assert torch.allclose(cached, train_out, atol=1e-5)
        layer.disentangler.generators.zero_()  # a parameter change invalidates the cached weight
        assert torch.allclose(layer(x), layer.mpo(x), atol=1e-5)


def test_disentangler_matrix_equals_the_gates_applied_one_by_one():
    torch.manual_seed(5)
    for modes in ([6, 8], [8, 8, 6], [3, 4]):
        dis = tn.Disentangler(modes, layers=3)
        with torch.no_grad():
            dis.generators.normal_()
        x = torch.randn(5, dis.in_features)
        assert torch.allclose(dis(x), dis.apply_gates(x), atol=1e-5), modes
        assert np.abs(dis.qubit_matrix().detach().double().numpy() - dis.qubit_unitary()).max() < 1e-5


def test_fit_error_from_second_moments_equals_the_error_over_tokens():
    torch.manual_seed(6)
    lin = _linear(48, 24)
    model = nn.Sequential(tn.compress_linear(lin, tn.plan_layer("0", lin, "svd", 4)))
    x = torch.randn(100, 24)
    with torch.no_grad():
        direct = float((model[0](x) - lin(x)).pow(2).sum() / lin(x).pow(2).sum())
    out = tn.fit_layers(model, {"0": lin}, {"0": x}, steps=0)
    assert out["layers"]["0"]["relative_error_before"] == pytest.approx(direct, rel=1e-4)


def test_export_is_exact_for_gates_near_the_identity():
    """Where training leaves the generators (~1e-2). Seed 1 draws a gate that qiskit 2's generic two-qubit
    synthesis (TwoQubitBasisDecomposer, what transpiling a UnitaryGate runs) specialises at ~1e-10
    infidelity, 2.3e-5 off in amplitude; the magic-basis construction stays exact."""
    from qiskit.quantum_info import Operator

    torch.manual_seed(1)
    dis = tn.Disentangler([4], layers=1)  # 2 qubits, one gate
    with torch.no_grad():
        dis.generators.normal_(0, 0.01)
    g = dis.gates(torch.float64).detach().numpy()[0]
    assert np.abs(Operator(tn.so4_circuit(g)).data - g).max() < 1e-12
    text, res = tn.export_disentangler(dis)
    assert res["two_qubit_gates"] <= 2  # SO(4): two CNOTs
    assert tn.unitary_distance(tn.qasm_unitary(text), dis.qubit_unitary()) < 1e-12
    torch.manual_seed(7)
    big = tn.Disentangler([8, 8, 6], layers=4)
    with torch.no_grad():
        big.generators.normal_(0, 0.01)
    text, _ = tn.export_disentangler(big)
    assert tn.unitary_distance(tn.qasm_unitary(text), big.qubit_unitary()) < 1e-10
