"""A KVM machine knows what it runs from its serial console: the last
kernel command line the guest printed, or for an OS booted from its own
disk its agent's word, read as the log grows."""

from __future__ import annotations

from voe.lab.kvm import ConsoleReader, KvmMachine, accelerator


def test_the_console_tells_which_persona_and_generation_booted_even_mid_line(tmp_path):
    log = tmp_path / "serial.log"
    reader = ConsoleReader()
    log.write_bytes(b"SeaBIOS\r\niPXE\r\n[    0.06] Kernel command line: root=/dev/nfs voe.persona=web voe.gen")
    assert reader.boot(log) is None  # the line is not finished yet
    with open(log, "ab") as f:
        f.write(b"eration=3 voe.token=x console=ttyS0\r\n[    0.07] more\r\n")
    boot = reader.boot(log)
    assert (boot.persona, boot.generation) == ("web", 3)
    with open(log, "ab") as f:  # the guest rebooted itself into a later generation
        f.write(b"[    0.06] Kernel command line: voe.persona=web voe.generation=4\r\n")
    assert reader.boot(log).generation == 4


def test_a_san_booted_os_is_who_its_agent_says_and_nobody_before(tmp_path):
    log = tmp_path / "serial.log"
    reader = ConsoleReader()
    log.write_bytes(b"[    0.06] Kernel command line: voe.persona=web voe.generation=2\r\n")
    assert reader.boot(log).persona == "web"
    with open(log, "ab") as f:  # the server is given to db, whose LUN holds its own command line
        f.write(b"SYSLINUX 6.04\r\n[    0.000000] Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org)\r\n"
                b"[    0.01] Kernel command line: root=LABEL=voe-root rd.iscsi.firmware=1 voe.boot_url=http://x\r\n")
    assert reader.boot(log) is None  # not web any more, and not yet anybody
    with open(log, "ab") as f:
        f.write(b"[   80.1] voe-agent[832]: voe-agent 15:10:29 db generation 1 starting\r\n")
    boot = reader.boot(log)
    assert (boot.persona, boot.generation) == ("db", 1)


def test_software_emulation_is_chosen_with_a_reason_when_asked(monkeypatch):
    monkeypatch.setenv("VOE_LAB_ACCEL", "tcg")
    assert accelerator() == ("tcg", "VOE_LAB_ACCEL=tcg")
    monkeypatch.setenv("VOE_LAB_ACCEL", "kvm")
    assert accelerator() == ("kvm", None)


def test_a_machine_under_software_emulation_has_one_vcpu_whatever_its_inventory_says(tmp_path):
    """Two emulated vCPUs make the guest give up its TSC for the HPET."""
    def vcpus(accel: str) -> str:
        machine = KvmMachine("kvm-1", [], None, tmp_path, 384, accel, cpus=2)
        argv = machine._argv()
        return argv[argv.index("-smp") + 1]

    assert vcpus("tcg") == "1"
    assert vcpus("kvm") == "2"


def test_a_machine_offers_its_guest_entropy(tmp_path):
    """Without a hardware RNG the guest's boot waits for its entropy."""
    argv = KvmMachine("kvm-1", [], None, tmp_path, 384, "tcg")._argv()
    assert "virtio-rng-pci" in argv
