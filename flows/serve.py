"""`make serve`: a local Prefect server (SQLite) plus both flows served on their schedules.

The lifecycle runs nightly (02:00), monitoring hourly; both show as deployments in the UI at
http://127.0.0.1:4200 (`make serve PORT=n`: QLIFE_PREFECT_PORT) and can be started from there. Ctrl-C stops the
server and the runner. The port already in use (another `make serve`, a Prefect server started by hand), or a
server that exits or does not answer, is a sentence and exit 1 (not the flows served to someone else's server).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prefect import serve

from flows.common import task_runner
from flows.lifecycle import lifecycle
from flows.monitor import monitor
from qlife.params import read_params

HOST, PORT = "127.0.0.1", int(os.environ.get("QLIFE_PREFECT_PORT", "4200"))  # `make serve PORT=...`
LIFECYCLE_CRON, MONITOR_CRON = "0 2 * * *", "0 * * * *"


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def wait_for_server(url: str, timeout: float = 90, server: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server is not None and server.poll() is not None:
            raise SystemExit(f"serve: the Prefect server exited with code {server.returncode} before answering at "
                             f"{url} (its output is above)")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"serve: the Prefect server did not answer at {url} within {timeout:.0f} s")


def main() -> None:
    if port_in_use(HOST, PORT):
        raise SystemExit(f"serve: port {PORT} on {HOST} is in use (another `make serve`, or a Prefect server "
                         "started by hand): stop it, then run `make serve` again")
    api = f"http://{HOST}:{PORT}/api"
    os.environ["PREFECT_API_URL"] = api
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    prefect_cli = str(Path(sys.executable).with_name("prefect"))
    server = subprocess.Popen([prefect_cli, "server", "start", "--host", HOST, "--port", str(PORT)])
    try:
        wait_for_server(api, server=server)
        print(f"Prefect UI: http://{HOST}:{PORT}  (deployments: qlife-lifecycle/nightly, qlife-monitor/hourly)")
        runner = task_runner(read_params("params.yaml").orchestration)  # orchestration.task_runner
        serve(lifecycle.with_options(task_runner=runner).to_deployment(name="nightly", cron=LIFECYCLE_CRON),
              monitor.with_options(task_runner=runner).to_deployment(name="hourly", cron=MONITOR_CRON))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
