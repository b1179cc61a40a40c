"""qlife.methods.int8: compressed layers served through nn.Linear, int8 quantization, and the bytes counted."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qlife.methods import int8
from qlife.methods import tensornet as tn


def _tiny_bert(seed: int = 0, vocab: int = 50, hidden: int = 32, layers: int = 2, inter: int = 64,
               positions: int = 16):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
                     intermediate_size=inter, max_position_embeddings=positions, num_labels=2)
    return BertForSequenceClassification(cfg).eval()


def test_int8_linear_weights_take_a_quarter_of_their_float32_bytes_and_compute_close():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 128)).eval()
    q = int8.quantize_int8(model)
    float_weights = int8.linear_weight_bytes(model)
    assert float_weights == 4 * (256 * 512 + 512 * 128)
    counted = int8.served_bytes(q)
    # weights 1 byte each, one float32 scale per output channel, the biases left float32
    assert counted["int8"] == float_weights // 4 + 4 * (512 + 128) + 4 * (512 + 128)
    weights_only = counted["int8"] - 4 * (512 + 128) * 2
    assert weights_only == float_weights / 4
    x = torch.randn(64, 256)
    with torch.no_grad():
        ref, out = model(x), q(x)
    assert (out - ref).norm() / ref.norm() < 0.04  # 8-bit weights, 7-bit activations (x86 reduce_range)
    assert not torch.equal(out, ref)  # it is quantized


def test_float32_bytes_are_four_per_parameter_with_embeddings_apart():
    model = _tiny_bert()
    b = int8.served_bytes(model)
    params = sum(p.numel() for p in model.parameters())
    emb = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Embedding))
    assert b["total"] == 4 * params
    assert b["embeddings"] == 4 * emb == 4 * (50 + 16 + 2) * 32
    assert b["body"] == b["total"] - b["embeddings"] and b["int8"] == 0


def test_int8_bytes_of_a_tiny_bert_equal_the_hand_count():
    q = int8.quantize_int8(_tiny_bert())
    h, inter, vocab, pos, types, labels, layers = 32, 64, 50, 16, 2, 2, 2

    def qlinear(i: int, o: int) -> int:  # int8 weight, float32 scale per output channel, float32 bias
        return i * o + 4 * o + 4 * o

    embeddings = sum(n * h + 8 * n for n in (vocab, pos, types))  # uint8 rows + float32 scale and offset each
    per_layer = 4 * qlinear(h, h) + qlinear(h, inter) + qlinear(inter, h) + 2 * (2 * 4 * h)  # + 2 LayerNorms
    body = 2 * 4 * h + layers * per_layer + qlinear(h, h) + qlinear(h, labels)  # embeddings' LN, pooler, head
    layer_norms = 2 * 4 * h + layers * 2 * (2 * 4 * h)  # what stays outside quantized modules
    b = int8.served_bytes(q)
    assert b == {"total": embeddings + body, "embeddings": embeddings, "body": body,
                 "int8": embeddings + body - layer_norms, "float": layer_norms}
    ids = torch.randint(0, vocab, (3, 9))
    with torch.no_grad():
        assert q(input_ids=ids).logits.shape == (3, labels)
    assert int8.file_bytes(q) > b["int8"]  # torch's own layout adds float64 scales, int64 zero points, pickle


@pytest.mark.parametrize("method", ["mpo", "mpo_disentangled", "svd"])
def test_servable_compressed_layers_compute_what_the_compressed_model_does(method):
    from qlife.methods.pruning import linear_targets

    model = _tiny_bert(1)
    tn.compress_model(model, method, 2.0, linear_targets(model, ["ffn"]), sites=2, disentangler_layers=2)
    with torch.no_grad():
        for layer in tn.compressed_layers(model).values():
            if isinstance(layer, tn.TNLinear) and layer.disentangler is not None:
                layer.disentangler.generators.normal_(std=0.5)
    served = int8.servable(model)
    assert not tn.compressed_layers(served)  # every factor is now an nn.Linear
    ids = torch.randint(0, 50, (4, 11))
    with torch.no_grad():
        ref = model(input_ids=ids).logits
        assert torch.allclose(served(input_ids=ids).logits, ref, atol=1e-5)
        q = int8.quantize_int8(served)
        assert (q(input_ids=ids).logits - ref).abs().max() < 0.05
    linears = [m for m in q.modules() if int8._is_qlinear(m)]
    assert len(linears) == sum(isinstance(m, nn.Linear) for m in served.modules())


def test_mpo_cores_quantize_to_a_quarter_of_their_float32_bytes():
    torch.manual_seed(2)
    lin = nn.Linear(96, 192)
    om, im = tn.factorize(192, 3), tn.factorize(96, 3)
    layer = tn.TNLinear(tn.MPOLinear.from_linear(lin, im, om, 6))
    served = int8.servable(nn.Sequential(layer))
    q = int8.quantize_int8(served)
    cores = sum(c.numel() for c in layer.mpo.cores)
    channels = sum(c.shape[1] * c.shape[3] for c in layer.mpo.cores)
    b = int8.served_bytes(q)
    assert b["int8"] == cores + 4 * channels  # the cores at 1 byte, a float32 scale per output channel
    assert b["float"] == 4 * 192  # the bias
    x = torch.randn(20, 96)
    with torch.no_grad():
        ref = layer(x)
        assert (q(x) - ref).norm() / ref.norm() < 0.05


def test_materialize_contracts_costly_mpo_layers_to_dense_int8_and_keeps_the_outputs():
    torch.manual_seed(3)
    lin = nn.Linear(96, 192)
    om, im = tn.factorize(192, 3), tn.factorize(96, 3)
    big = tn.TNLinear(tn.MPOLinear.from_linear(lin, im, om, 64), tn.Disentangler(im, layers=2))  # near full rank
    small = tn.TNLinear(tn.MPOLinear.from_linear(nn.Linear(192, 96), om, im, 1))  # bond 1: sites are cheaper
    with torch.no_grad():
        big.disentangler.generators.normal_(std=0.5)
    model = nn.Sequential(big, small)
    stored = int8.quantize_int8(int8.servable(model))
    served, paths = int8.materialize(stored)
    assert paths == {"0": "dense", "1": "sites"}
    assert stored[0].site_macs() > 96 * 192 >= stored[1].site_macs()
    assert int8._is_qlinear(served[0]) and isinstance(served[1], int8.MPOServe)
    with torch.no_grad():  # the dense form of the stored cores equals the float layer up to int8 rounding
        w = stored[0].dense_weight()
        ref = big.effective_weight()
        assert (w - ref).norm() / ref.norm() < 0.02
        x = torch.randn(16, 96)
        y_ref = model(x)
        assert (served(x) - y_ref).norm() / y_ref.norm() < 0.05
