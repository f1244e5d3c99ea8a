"""``voe serve`` as an operator runs it: a process of its own, its data dir,
its own ports, ready once its API and agent service answer over HTTPS."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from harness import free_port


@contextmanager
def voe_serve(tmp_path: Path, *extra: str, database_url: str | None = None) -> Iterator[dict]:
    """Yields the data dir, the CLI's environment, the ports and the log file."""
    data = tmp_path / "data"
    port, agent_port, boot_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("VOE_URL", "VOE_TOKEN", "VOE_CA", "VOE_LOG_FORMAT")}
    env |= {"VOE_DATA_DIR": str(data)} | ({"VOE_DATABASE_URL": database_url} if database_url else {})
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "voe.cli.main", "serve", "--port", str(port), "--agent-port",
                             str(agent_port), "--boot-port", str(boot_port), *extra], env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if (data / "ca.pem").exists():
                    verify = ssl.create_default_context(cafile=data / "ca.pem")
                    if all(httpx.get(f"https://127.0.0.1:{p}/healthz", verify=verify, timeout=2).status_code == 200
                           for p in (port, agent_port)):
                        break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield {"data": data, "env": env, "api": port, "agents": agent_port, "boot": boot_port, "log": log,
               "url": f"https://127.0.0.1:{port}", "ca": data / "ca.pem"}
    finally:
        proc.terminate()
        proc.wait(30)
