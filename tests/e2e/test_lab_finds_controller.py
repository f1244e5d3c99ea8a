"""``voe lab up`` finds the controller's boot port as ``voe serve`` tells
it: from ``VOE_BOOT_URL`` or the data dir's ``boot.url``. Its machines then
boot from that controller."""

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
    (data / "controller.url").write_text("https://127.0.0.1:18470\n")
    (data / "boot.url").write_text("http://127.0.0.1:18480\n")
    env = {k: v for k, v in os.environ.items() if k != "VOE_BOOT_URL"} | {"VOE_DATA_DIR": str(data)}
    assert "machines boot from http://127.0.0.1:18480" in lab_says(tmp_path, env=env)


def test_the_lab_boots_its_machines_from_the_boot_url_in_the_environment(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "VOE_DATA_DIR"} | {"VOE_BOOT_URL": "http://127.0.0.1:18481"}
    assert "machines boot from http://127.0.0.1:18481" in lab_says(tmp_path, env=env)
