"""The ``rendered`` network backend: systemd-networkd files (and a netplan
file saying the same) for images that configure the network at boot; the
lab reads them to know what the persona's OS configured."""

from __future__ import annotations

from pathlib import Path

PREFIX = "voe-"


def networkd_files(config: dict) -> dict[str, str]:
    """File name -> content, for docs/agent-protocol.md section 4."""
    files: dict[str, str] = {}
    gateway_used = False

    def gw(i: dict) -> list[str]:
        nonlocal gateway_used
        if i.get("gateway") and not gateway_used:
            gateway_used = True
            return [f"Gateway={i['gateway']}"]
        return []

    ifaces = config["interfaces"]
    trunk = config.get("trunk")
    if trunk:
        native = [i for i in ifaces if not i["tagged"] and not i["dedicated"]]
        tagged = [i for i in ifaces if i["tagged"]]
        lines = ["[Match]", f"MACAddress={trunk['nic_mac']}", "", "[Link]"]
        if native:
            lines.append(f"MACAddress={native[0]['mac']}")
        lines += ["", "[Network]"]
        for i in native:
            lines += [f"Address={i['address']}"] + gw(i)
        lines += [f"VLAN={i['name']}" for i in tagged]
        files[f"10-{PREFIX}trunk.network"] = "\n".join(lines) + "\n"
        for i in tagged:
            files[f"20-{PREFIX}{i['name']}.netdev"] = (
                f"[NetDev]\nName={i['name']}\nKind=vlan\nMACAddress={i['mac']}\n\n[VLAN]\nId={i['vlan']}\n")
            files[f"20-{PREFIX}{i['name']}.network"] = (
                "\n".join(["[Match]", f"Name={i['name']}", "", "[Network]", f"Address={i['address']}"] + gw(i)) + "\n")
    for i in ifaces:
        if trunk and not i["dedicated"]:
            continue
        lines = ["[Match]", f"MACAddress={i['nic_mac']}", "", "[Link]", f"MACAddress={i['mac']}", "",
                 "[Network]", f"Address={i['address']}"] + gw(i)
        files[f"30-{PREFIX}{i['name']}.network"] = "\n".join(lines) + "\n"
    return files


def netplan(config: dict) -> str:
    """The same configuration as netplan YAML (written as text: no YAML
    library in a persona image)."""
    out = ["network:", "  version: 2", "  renderer: networkd", "  ethernets:"]
    trunk = config.get("trunk")
    ifaces = config["interfaces"]
    eth = []
    if trunk:
        native = [i for i in ifaces if not i["tagged"] and not i["dedicated"]]
        eth.append(("trunk", trunk["nic_mac"], native[0]["mac"] if native else None, [i["address"] for i in native]))
    eth += [(i["name"], i["nic_mac"], i["mac"], [i["address"]]) for i in ifaces if not trunk or i["dedicated"]]
    for name, match, mac, addrs in eth:
        out += [f"    {name}:", "      match:", f"        macaddress: \"{match}\"", f"      set-name: {name}"]
        if mac:
            out.append(f"      macaddress: \"{mac}\"")
        out.append(f"      addresses: [{', '.join(addrs)}]")
    tagged = [i for i in ifaces if i["tagged"]]
    if tagged:
        out.append("  vlans:")
        for i in tagged:
            out += [f"    {i['name']}:", f"      id: {i['vlan']}", "      link: trunk",
                    f"      macaddress: \"{i['mac']}\"", f"      addresses: [{i['address']}]"]
    return "\n".join(out) + "\n"


def write(root: Path, config: dict) -> list[Path]:
    """Write the files, rewriting only what changed and removing stale voe
    files; returns what was written."""
    netdir = root / "etc" / "systemd" / "network"
    netdir.mkdir(parents=True, exist_ok=True)
    wanted = networkd_files(config)
    written = []
    for old in netdir.glob(f"*{PREFIX}*"):
        if old.name not in wanted:
            old.unlink()
    for name, text in wanted.items():
        path = netdir / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            written.append(path)
    plan = root / "etc" / "netplan" / "60-voe.yaml"
    plan.parent.mkdir(parents=True, exist_ok=True)
    plan.write_text(netplan(config))
    return written
