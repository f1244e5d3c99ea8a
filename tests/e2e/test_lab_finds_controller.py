"""``voe lab up`` finds the controller as every other command does: from
``--url``, ``VOE_URL``, or the data dir's ``controller.url`` that ``voe
serve`` writes. Its machines then boot from that controller."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from harness import dump, relocate
from tests.conftest import EXAMPLE, free_port
from voe.cli.yamlfile import DatacenterFile


def lab_says(tmp_path, *args: str, env: dict) -> str:
    dc = tmp_path / "dc.yaml"
    dc.write_text(dump(relocate(DatacenterFile(EXAMPLE).data())))
    lab = subprocess.Popen([sys.executable, "-m", "voe.cli.main", *args, "lab", "up", "-f", str(dc),
                            "--control-port", str(free_port()), "--state-dir", str(tmp_path / "lab")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        for line in lab.stdout:
            if line.startswith("lab up:"):
                return line
        raise AssertionError(f"the lab never came up (exit {lab.wait()})")
    finally:
        lab.send_signal(signal.SIGTERM)
        lab.wait(60)


def test_the_lab_boots_its_machines_from_the_controller_in_the_data_dir(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "controller.url").write_text("http://127.0.0.1:18470\n")
    env = {k: v for k, v in os.environ.items() if k not in ("VOE_URL", "VOE_TOKEN")} | {"VOE_DATA_DIR": str(data)}
    assert "machines boot from http://127.0.0.1:18470" in lab_says(tmp_path, env=env)


def test_the_lab_boots_its_machines_from_the_url_every_command_takes(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "VOE_DATA_DIR"} | {"VOE_URL": "http://127.0.0.1:18471"}
    assert "machines boot from http://127.0.0.1:18471" in lab_says(tmp_path, env=env)
    assert "machines boot from http://127.0.0.1:18472" in lab_says(tmp_path, "--url", "http://127.0.0.1:18472",
                                                                  env=env)
