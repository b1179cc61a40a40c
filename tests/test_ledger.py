"""qlife.ledger: a meter counts the CPU of the processes working for the block (children waited for, live workers)
once each, beside its own; `verdict_cost` turns a meter record into a verdict's cost."""

from __future__ import annotations

import subprocess
import sys
import time

from qlife import ledger

BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


def test_a_child_process_waited_for_in_the_block_counts_in_cpu_s():
    with ledger.measure() as m:
        subprocess.run([sys.executable, "-c", BUSY.format(s=0.5)], check=True)
    assert m.cpu_children_s >= 0.45, m  # the child's own clock: python's start-up plus the 0.5 s loop
    assert m.cpu_s >= m.cpu_children_s >= 0.45
    assert m.cpu_s < m.wall_s + 0.5  # the child once: it ran alone, so CPU cannot exceed the wall by much
    d = m.as_dict()
    assert d["cpu_children_s"] == round(m.cpu_children_s, 3) and d["cpu_s"] >= 0.4


def test_a_block_without_children_has_none():
    with ledger.measure() as m:
        t = time.process_time()
        while time.process_time() - t < 0.1:
            pass
    assert m.cpu_children_s == 0.0 and m.as_dict()["cpu_children_s"] == 0.0
    assert m.cpu_s >= 0.09


def test_a_live_child_counts_only_what_it_spent_inside_the_block():
    """A worker that outlives the block (a pool's): its CPU before the block is not charged, its CPU inside is,
    and once it ends and is waited for in a later block, that block is charged only its last part."""
    step = "import sys\nsys.stdin.readline()\n" + BUSY + "print('done', flush=True)\n"
    script = BUSY.format(s=0.4) + "print('ready', flush=True)\n" + step.format(s=0.3) + step.format(s=0.2)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"  # start-up and 0.4 s spent before the block
        with ledger.measure() as first:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == "done\n"  # 0.3 s inside; it stays alive, waiting
        assert proc.poll() is None
        assert 0.27 <= first.cpu_children_s <= 0.45, first
        with ledger.measure() as second:
            proc.communicate("go\n", timeout=60)  # its last 0.2 s, then it ends and is waited for
        assert 0.17 <= second.cpu_children_s <= 0.35, second  # not its whole life (~1 s with start-up)
    finally:
        proc.kill()
        proc.wait()


def test_verdict_cost_keeps_the_qpu_estimate_of_a_quantum_method_only():
    record = {"wall_s": 2.0, "cpu_s": 3.0, "cpu_children_s": 1.0, "energy_kwh": 1e-6,
              "quantum": {"qpu_seconds_est": 4.5}}
    assert ledger.verdict_cost(record, quantum=True) == {"wall_s": 2.0, "cpu_s": 3.0, "energy_kwh": 1e-6,
                                                          "qpu_s_est": 4.5}
    assert ledger.verdict_cost(record)["qpu_s_est"] == 0.0
    assert ledger.verdict_cost(None, True) == {"wall_s": None, "cpu_s": None, "energy_kwh": None, "qpu_s_est": None}
