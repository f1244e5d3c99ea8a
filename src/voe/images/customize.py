"""What makes a clone this persona and not the template: written into the
clone's root, never the template's. Returns the files written, so the
operator sees exactly what changed."""

from __future__ import annotations

import uuid
from pathlib import Path


def customize_root(root: Path, hostname: str, ssh_keys: list[str] | None = None) -> list[str]:
    written = []

    def write(rel: str, text: str, mode: int = 0o644) -> None:
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
        f.chmod(mode)
        written.append("/" + rel)

    write("etc/hostname", f"{hostname}\n")
    write("etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n")
    write("etc/machine-id", uuid.uuid4().hex + "\n", 0o444)  # a fresh identity for systemd and DHCP
    if ssh_keys:
        write("root/.ssh/authorized_keys", "".join(k.strip() + "\n" for k in ssh_keys), 0o600)
        (root / "root" / ".ssh").chmod(0o700)
    return written
