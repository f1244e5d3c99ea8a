"""A KVM machine knows what it runs from its serial console: the last
kernel command line the guest printed, read as the log grows."""

from __future__ import annotations

from voe.lab.kvm import _ConsoleReader, accelerator


def test_the_console_tells_which_persona_and_generation_booted_even_mid_line(tmp_path):
    log = tmp_path / "serial.log"
    reader = _ConsoleReader()
    log.write_bytes(b"SeaBIOS\r\niPXE\r\n[    0.06] Kernel command line: root=/dev/nfs voe.persona=web voe.gen")
    assert reader.boot(log) is None  # the line is not finished yet
    with open(log, "ab") as f:
        f.write(b"eration=3 voe.token=x console=ttyS0\r\n[    0.07] more\r\n")
    boot = reader.boot(log)
    assert (boot.persona, boot.generation) == ("web", 3)
    with open(log, "ab") as f:  # the guest rebooted itself into a later generation
        f.write(b"[    0.06] Kernel command line: voe.persona=web voe.generation=4\r\n")
    assert reader.boot(log).generation == 4


def test_software_emulation_is_chosen_with_a_reason_when_asked(monkeypatch):
    monkeypatch.setenv("VOE_LAB_ACCEL", "tcg")
    assert accelerator() == ("tcg", "VOE_LAB_ACCEL=tcg")
    monkeypatch.setenv("VOE_LAB_ACCEL", "kvm")
    assert accelerator() == ("kvm", None)
