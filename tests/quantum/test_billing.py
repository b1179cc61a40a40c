"""Bills from the public price lists: expectations hand-computed from the documented unit prices."""

import json

import pytest

from qlife.quantum.billing import CostLimitError, anneal_bill, enforce, gate_bill, local_bill
from qlife.quantum.errors import QuantumBackendError

ARIA = "arn:aws:braket:us-east-1::device/qpu/ionq/Aria-1"
PARAM = "deploy.quantum.sampler.max_cost_usd"


def test_ibm_payg_and_flex_per_second():
    # 2 circuits x 100 shots, 1 job: 2.0 s + 2 x (0.1 s + 100 x 250 us) = 2.25 s of QPU time
    b = gate_bill("ibm", "ibm_fez", 2, 100)
    assert b.qpu_seconds_est == pytest.approx(2.25)
    assert b.price_usd_est == pytest.approx(2.25 * 96.0 / 60.0)  # Pay-As-You-Go 96 USD/min = 3.60 USD
    assert b.price_usd_est == pytest.approx(3.60)
    assert gate_bill("ibm", "flex:ibm_fez", 2, 100).price_usd_est == pytest.approx(2.70)  # 72 USD/min
    assert "96 USD/min" in b.price_basis and "ibm.com/quantum/pricing" in b.price_basis


def test_braket_ionq_aria_per_task_plus_per_shot():
    b = gate_bill("braket", ARIA, 3, 100)
    assert b.price_usd_est == pytest.approx(3 * 0.30 + 300 * 0.03)  # 9.90 USD
    assert b.price_usd_est == pytest.approx(9.90)
    assert b.shots == 300 and b.circuits == 3


def test_braket_iqm_and_rigetti_by_short_name():
    garnet = gate_bill("braket", "Garnet", 3, 100)
    assert garnet.device == "arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet"
    assert garnet.price_usd_est == pytest.approx(0.90 + 0.435)  # 0.30/task, 0.00145/shot
    assert gate_bill("braket", "ankaa-3", 10, 1000).price_usd_est == pytest.approx(3.00 + 9.00)  # 0.0009/shot


def test_braket_simulators_local_free_managed_lower_bound():
    assert gate_bill("braket", "braket_sv", 5, 1000).price_usd_est == 0.0
    sv1 = gate_bill("braket", "sv1", 4, 1000)
    assert sv1.price_usd_est == pytest.approx(4 * 3 / 60 * 0.075)  # 3 s minimum per task at 0.075 USD/min
    assert "LOWER BOUND" in sv1.price_basis


def test_dwave_per_qpu_access_time():
    # per problem: 15 ms programming + 100 reads x (20 + 120 + 20) us = 31 ms; 2 problems = 62 ms
    b = anneal_bill("Advantage_system4.1", problems=2, reads=100)
    assert b.qpu_seconds_est == pytest.approx(0.062)
    assert b.price_usd_est == pytest.approx(0.062 * 2000.0 / 3600.0)  # 2,000 USD per hour
    assert b.provider == "dwave" and b.shots == 200 and b.energy_kwh_est > 0


@pytest.mark.parametrize(
    ("call", "known"),
    [
        (lambda: gate_bill("braket", "arn:aws:braket:::device/qpu/nobody/X", 1, 10), ARIA),
        (lambda: gate_bill("ibm", "quantinuum_h2", 1, 10), "payg"),
        (lambda: anneal_bill("DW_2000Q_6", 1, 10), "Advantage2"),
        (lambda: gate_bill("azure", "x", 1, 10), "braket"),
    ],
)
def test_unknown_device_lists_known_ones(call, known):
    with pytest.raises(QuantumBackendError, match="known") as e:
        call()
    assert known in str(e.value)


def test_enforce_refuses_over_cap_with_bill_and_param():
    b = gate_bill("braket", ARIA, 3, 100)  # 9.90 USD
    with pytest.raises(CostLimitError) as e:
        enforce(b, max_cost_usd=5.0, confirm=False, param=PARAM)
    msg = str(e.value)
    assert b.format() in msg and PARAM in msg and "confirm: true" in msg and "9.90" in msg
    assert isinstance(e.value, QuantumBackendError)


def test_enforce_passes_under_cap_or_confirmed():
    b = gate_bill("braket", ARIA, 3, 100)
    enforce(b, max_cost_usd=10.0, confirm=False, param=PARAM)
    enforce(b, max_cost_usd=9.90, confirm=False, param=PARAM)  # equal to the cap is not above it
    enforce(b, max_cost_usd=1.0, confirm=True, param=PARAM)
    enforce(b, max_cost_usd=None, confirm=True, param=PARAM)


def test_enforce_none_cap_refuses_any_nonzero_price_but_not_free():
    tiny = anneal_bill("Advantage2_system1.6", problems=1, reads=1)
    assert 0 < tiny.price_usd_est < 0.01
    with pytest.raises(CostLimitError, match="unset"):
        enforce(tiny, max_cost_usd=None, confirm=False, param=PARAM)
    enforce(local_bill("aer", 10, 1000), max_cost_usd=None, confirm=False, param=PARAM)


def test_local_bill_free_with_energy():
    b = local_bill("aer", 5, 1000)
    assert b.price_usd_est == 0.0 and b.provider == "local"
    assert b.energy_kwh_est > 0 and b.qpu_seconds_est > 0 and b.shots == 5000


def test_to_dict_is_json_and_format_is_readable():
    for b in (gate_bill("ibm", "ibm_fez", 2, 100), local_bill("cpu", 1, 10), anneal_bill("Advantage_system6.4", 1, 10)):
        d = json.loads(json.dumps(b.to_dict()))
        assert d["price_usd_est"] == b.price_usd_est and set(d) >= {"provider", "device", "price_basis"}
    lines = gate_bill("ibm", "ibm_fez", 2, 100).format().splitlines()
    assert len(lines) == 6 and all(line[2:11].strip() for line in lines)
    assert "3.60 USD" in "\n".join(lines)


def test_negative_counts_rejected():
    with pytest.raises(ValueError):
        gate_bill("ibm", "ibm_fez", -1, 100)
