"""The sample template library, built from Debian's packages on this
machine (no downloaded images): a small real root tree — busybox-static's
shell and tools, an init that starts the voe agent, the agent itself — per
role of the review's library. The roles are stand-ins: every tree is the
same busybox system, marked with its role in /etc/voe-template; Apache,
Oracle, WebLogic, IIS and AD are not installed. Linux roles are NFS root
trees; the SAN-booted ones (oracle, iis, ad) are ext4 disk images made with
``mke2fs -d`` (no mount needed).

    python -m voe.images.samples OUT_DIR
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from voe.agent.install import install_into

ROLES = {  # name -> (boot, description)
    "apache": ("linux-nfs", "Apache web server (stand-in: busybox httpd)"),
    "weblogic": ("linux-nfs", "BEA WebLogic application server (stand-in)"),
    "lb": ("linux-nfs", "Linux load balancer (stand-in)"),
    "oracle": ("iscsi", "Oracle database, SAN-booted (stand-in)"),
    "iis": ("iscsi", "IIS web server, SAN-booted (stand-in: a Linux image)"),
    "ad": ("iscsi", "Active Directory controller, SAN-booted (stand-in: a Linux image)"),
}
BUSYBOX = Path("/bin/busybox")
DISK_MIB = 32

INIT = """#!/bin/sh
# voe sample image: mount what the kernel does not, then run the voe agent
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
hostname -F /etc/hostname
exec /usr/bin/voe-agent
"""


def build_tree(root: Path, role: str, description: str) -> None:
    if not BUSYBOX.exists():
        raise SystemExit("busybox-static is not installed (apt-get install busybox-static)")
    for d in ("bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "var/lib", "usr/bin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split():
        link = root / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (root / "sbin" / "init").write_text(INIT)
    (root / "sbin" / "init").chmod(0o755)
    files = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
        "etc/group": "root:x:0:\n",
        "etc/hostname": f"{role}-template\n",
        "etc/machine-id": "",
        "etc/voe-template": f"role={role}\ndescription={description}\nstand-in=yes\n",
    }
    for rel, text in files.items():
        (root / rel).write_text(text)
    install_into(root)


def build(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for role, (boot, description) in ROLES.items():
        tree = out / role
        if tree.exists():
            shutil.rmtree(tree)
        build_tree(tree, role, description)
        if boot == "iscsi":
            disk = out / f"{role}.raw"
            disk.unlink(missing_ok=True)
            subprocess.run(["mke2fs", "-q", "-t", "ext4", "-L", role, "-d", str(tree), str(disk), f"{DISK_MIB}M"],
                           check=True, capture_output=True, text=True)
            shutil.rmtree(tree)
            made.append(disk)
        else:
            made.append(tree)
    return made


if __name__ == "__main__":
    for p in build(Path(sys.argv[1] if len(sys.argv) > 1 else "build/templates")):
        print(p)
