"""The ``rendered`` network backend: systemd-networkd files (and a netplan
file saying the same) for images that configure the network at boot; the
lab reads them to know what the persona's OS configured."""

from __future__ import annotations

from pathlib import Path

PREFIX = "voe-"


BOND_MODES = {"active-backup": "active-backup", "lacp": "802.3ad"}
"""voe's bond mode -> the kernel's (and networkd's and netplan's) name."""


def gateway_owner(config: dict) -> str | None:
    """The interface whose gateway is the default route: the first, in the
    configuration's order, that has one."""
    return next((i["name"] for i in config["interfaces"] if i.get("gateway")), None)


def networkd_files(config: dict) -> dict[str, str]:
    """File name -> content, for docs/agent-protocol.md section 4."""
    files: dict[str, str] = {}
    owner = gateway_owner(config)

    def gw(i: dict) -> list[str]:
        """The interface's gateway (one default route) and name servers."""
        return ([f"Gateway={i['gateway']}"] if i["name"] == owner else []) + [f"DNS={a}" for a in i.get("dns", ())]

    ifaces = config["interfaces"]
    trunk = config.get("trunk")
    if trunk:
        native = [i for i in ifaces if not i["tagged"] and not i["dedicated"]]
        tagged = [i for i in ifaces if i["tagged"]]
        if trunk.get("bond"):
            files.update(_bond_files("10", "trunk", trunk["bond"], trunk["members"],
                                     native[0]["mac"] if native else None))
            lines = ["[Match]", "Name=trunk", "", "[Network]"]
        else:
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
        if i.get("bond"):
            files.update(_bond_files("30", i["name"], i["bond"], i["members"], i["mac"]))
            lines = ["[Match]", f"Name={i['name']}", "", "[Network]", f"Address={i['address']}"] + gw(i)
        else:
            lines = ["[Match]", f"MACAddress={i['nic_mac']}", "", "[Link]", f"MACAddress={i['mac']}", "",
                     "[Network]", f"Address={i['address']}"] + gw(i)
        files[f"30-{PREFIX}{i['name']}.network"] = "\n".join(lines) + "\n"
    return files


def _bond_files(order: str, name: str, mode: str, members: list[str], mac: str | None) -> dict[str, str]:
    """A bond's netdev and one ``.network`` per member. Members are matched
    by their permanent MAC: once enslaved they wear the bond's. The first
    member (the NIC the machine booted from) is an active-backup bond's
    primary."""
    netdev = ["[NetDev]", f"Name={name}", "Kind=bond"] + ([f"MACAddress={mac}"] if mac else [])
    netdev += ["", "[Bond]", f"Mode={BOND_MODES[mode]}", "MIIMonitorSec=100ms"]
    if mode == "lacp":
        netdev += ["LACPTransmitRate=fast", "TransmitHashPolicy=layer3+4"]
    files = {f"{order}-{PREFIX}{name}.netdev": "\n".join(netdev) + "\n"}
    for k, member in enumerate(members):
        lines = ["[Match]", f"PermanentMACAddress={member}", "", "[Network]", f"Bond={name}"]
        if mode == "active-backup" and k == 0:
            lines.append("PrimarySlave=yes")
        files[f"{int(order) + 1}-{PREFIX}{name}-member{k}.network"] = "\n".join(lines) + "\n"
    return files


def netplan(config: dict) -> str:
    """The same configuration as netplan YAML (written as text: no YAML
    library in a persona image)."""
    out = ["network:", "  version: 2", "  renderer: networkd", "  ethernets:"]
    trunk = config.get("trunk")
    ifaces = config["interfaces"]
    links = []  # (name, NIC MACs, bond mode, MAC, the interfaces whose addresses it carries)
    if trunk:
        native = [i for i in ifaces if not i["tagged"] and not i["dedicated"]]
        links.append(("trunk", trunk.get("members") or [trunk["nic_mac"]], trunk.get("bond"),
                      native[0]["mac"] if native else None, native))
    links += [(i["name"], i.get("members") or [i["nic_mac"]], i.get("bond"), i["mac"], [i])
              for i in ifaces if not trunk or i["dedicated"]]
    bonds = []
    owner = gateway_owner(config)
    for name, nics, bond, mac, carried in links:
        if bond:
            for k, member in enumerate(nics):
                out += [f"    {name}-nic{k}:", "      match:", f"        macaddress: \"{member}\""]
            bonds.append((name, len(nics), bond, mac, carried))
            continue
        out += [f"    {name}:", "      match:", f"        macaddress: \"{nics[0]}\"", f"      set-name: {name}"]
        if mac:
            out.append(f"      macaddress: \"{mac}\"")
        out += _netplan_addresses(carried, owner)
    if bonds:
        out.append("  bonds:")
    for name, count, bond, mac, carried in bonds:
        out += [f"    {name}:", f"      interfaces: [{', '.join(f'{name}-nic{k}' for k in range(count))}]"]
        if mac:
            out.append(f"      macaddress: \"{mac}\"")
        out += _netplan_addresses(carried, owner)
        out += ["      parameters:", f"        mode: {BOND_MODES[bond]}", "        mii-monitor-interval: 100"]
        out += [f"        primary: {name}-nic0"] if bond == "active-backup" else ["        lacp-rate: fast",
                                                                                 "        transmit-hash-policy: layer3+4"]
    tagged = [i for i in ifaces if i["tagged"]]
    if tagged:
        out.append("  vlans:")
        for i in tagged:
            out += [f"    {i['name']}:", f"      id: {i['vlan']}", "      link: trunk", f"      macaddress: \"{i['mac']}\""]
            out += _netplan_addresses([i], owner)
    return "\n".join(out) + "\n"


def _netplan_addresses(carried: list[dict], owner: str | None) -> list[str]:
    """Addresses, the default route (on ``owner``'s link) and name servers
    of one link."""
    out = [f"      addresses: [{', '.join(i['address'] for i in carried)}]"]
    for i in carried:
        if i["name"] == owner:
            out += ["      routes:", "        - to: default", f"          via: {i['gateway']}"]
    dns = [a for i in carried for a in i.get("dns", ())]
    if dns:
        out += ["      nameservers:", f"        addresses: [{', '.join(dict.fromkeys(dns))}]"]
    return out


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
