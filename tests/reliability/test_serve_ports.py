"""`make serve` (flows/serve.py) on a busy port 4200, or with a Prefect server that dies before answering: a
sentence and exit 1, never the flows served to another program's server or a 90 s wait and a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest


def test_busy_port_is_refused_before_a_server_starts(monkeypatch):
    import flows.serve as serve

    def no_server(*_a, **_k):
        raise AssertionError("no Prefect server may start on a busy port")

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setattr(serve, "PORT", port)
        monkeypatch.setattr(serve.subprocess, "Popen", no_server)
        with pytest.raises(SystemExit) as exit_:
            serve.main()
    assert f"port {port} on 127.0.0.1 is in use" in str(exit_.value.code)


def test_a_server_that_exits_is_a_sentence_not_a_wait():
    from flows.serve import wait_for_server

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    dead.wait()
    with pytest.raises(SystemExit, match="the Prefect server exited with code 3 before answering"):
        wait_for_server(f"http://127.0.0.1:{port}/api", timeout=30, server=dead)
