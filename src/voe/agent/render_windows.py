"""The ``powershell`` network backend: one PowerShell script that gives a
Windows persona its network identity, run by the agent at every start.

NICs are found by their permanent (burned-in) MAC and renamed after what
they carry. On a physical server the trunk is an LBFO team (``New-NetLbfoTeam``:
Windows tags VLANs on a team, one member or several): its default
interface, named ``trunk``, carries the boot vNIC untagged, and each tagged
vNIC is a team interface on its VLAN (``Add-NetLbfoTeamNic -VlanID``). A
bonded vNIC is a team of its own; active-backup is a switch-independent
team with every member but the first on standby, LACP a ``Lacp`` team. A
VM's NICs arrive tagged by the hypervisor and are only renamed. Each
interface then gets the persona's MAC, its static address (DHCP off), the
default route through the first gateway, and its name servers; an iSCSI
initiator gets the persona's IQN. Every step reads before it writes, so a
second run changes nothing.

Standard library only: the agent renders the script inside the persona.
"""

from __future__ import annotations

import ipaddress

from voe.agent.render import gateway_owner

PRELUDE = r"""#Requires -RunAsAdministrator
$ErrorActionPreference = 'Stop'

function Find-VoeNic([string]$Mac) {
    $want = ($Mac -replace '[:-]', '').ToUpper()
    $nic = Get-NetAdapter -Physical | Where-Object { ($_.PermanentAddress -replace '-', '') -eq $want }
    if (-not $nic) { throw "voe: no NIC with MAC $Mac on this machine" }
    return $nic
}

function Use-VoeNic([string]$Mac, [string]$Name) {
    $nic = Find-VoeNic $Mac
    if ($nic.Name -ne $Name) { Rename-NetAdapter -Name $nic.Name -NewName $Name -Confirm:$false }
}

function Set-VoeTeam([string]$Name, [string[]]$Members, [string]$Mode, [string[]]$Standby) {
    $team = Get-NetLbfoTeam -Name $Name -ErrorAction SilentlyContinue
    if ($team) {
        $have = @(Get-NetLbfoTeamMember -Team $Name | ForEach-Object Name)
        if ($team.TeamingMode -ne $Mode -or (Compare-Object $have $Members)) {
            Remove-NetLbfoTeam -Name $Name -Confirm:$false
            $team = $null
        }
    }
    if (-not $team) {
        $team = @{ Name = $Name; TeamMembers = $Members; TeamingMode = $Mode; LoadBalancingAlgorithm = 'Dynamic' }
        if ($Mode -eq 'Lacp') { $team.LacpTimer = 'Fast' }
        New-NetLbfoTeam @team -Confirm:$false | Out-Null
    }
    foreach ($member in $Members) {
        $role = if ($Standby -contains $member) { 'Standby' } else { 'Active' }
        if ((Get-NetLbfoTeamMember -Name $member).AdministrativeMode -ne $role) {
            Set-NetLbfoTeamMember -Name $member -AdministrativeMode $role -Confirm:$false
        }
    }
}

function Set-VoeTeamVlan([string]$Team, [string]$Name, [int]$VlanId) {
    if (-not (Get-NetLbfoTeamNic -Team $Team -Name $Name -ErrorAction SilentlyContinue)) {
        Add-NetLbfoTeamNic -Team $Team -Name $Name -VlanID $VlanId -Confirm:$false | Out-Null
    }
}

function Set-VoeMac([string]$Name, [string]$Mac) {
    $want = ($Mac -replace ':', '-').ToUpper()
    if ((Get-NetAdapter -Name $Name).MacAddress -ne $want) {
        Set-NetAdapter -Name $Name -MacAddress $want -Confirm:$false
    }
}

function Set-VoeAddress([string]$Name, [string]$Family, [string]$Address, [int]$Prefix, [string]$Gateway, [string[]]$Dns) {
    Set-NetIPInterface -InterfaceAlias $Name -AddressFamily $Family -Dhcp Disabled
    $have = @(Get-NetIPAddress -InterfaceAlias $Name -AddressFamily $Family -PrefixOrigin Manual -ErrorAction SilentlyContinue)
    $have | Where-Object { $_.IPAddress -ne $Address -or $_.PrefixLength -ne $Prefix } | Remove-NetIPAddress -Confirm:$false
    if (-not ($have | Where-Object { $_.IPAddress -eq $Address -and $_.PrefixLength -eq $Prefix })) {
        New-NetIPAddress -InterfaceAlias $Name -AddressFamily $Family -IPAddress $Address -PrefixLength $Prefix | Out-Null
    }
    if ($Gateway) {
        $default = if ($Family -eq 'IPv6') { '::/0' } else { '0.0.0.0/0' }
        $route = Get-NetRoute -InterfaceAlias $Name -DestinationPrefix $default -ErrorAction SilentlyContinue
        if (-not ($route | Where-Object NextHop -eq $Gateway)) {
            $route | Remove-NetRoute -Confirm:$false
            New-NetRoute -InterfaceAlias $Name -DestinationPrefix $default -NextHop $Gateway | Out-Null
        }
    }
    if ($Dns) { Set-DnsClientServerAddress -InterfaceAlias $Name -ServerAddresses $Dns }
}

function Set-VoeInitiator([string]$Iqn) {
    $port = Get-InitiatorPort | Where-Object ConnectionType -eq 'iSCSI' | Select-Object -First 1
    if (-not $port) { throw "voe: no iSCSI initiator on this machine for $Iqn" }
    if ($port.NodeAddress -ne $Iqn) { Set-InitiatorPort -NodeAddress $port.NodeAddress -NewNodeAddress $Iqn }
}
"""

TEAM_MODES = {"active-backup": "SwitchIndependent", "lacp": "Lacp"}
"""voe's bond mode -> the LBFO teaming mode."""


def quote(value: object) -> str:
    """A PowerShell single-quoted string: nothing inside is expanded."""
    return "'" + str(value).replace("'", "''") + "'"


def _list(values: list[str]) -> str:
    return "@(" + ", ".join(quote(v) for v in values) + ")"


def _team(name: str, members: list[str], bond: str | None) -> list[str]:
    """NICs ``members`` renamed NAME-nicK and teamed as NAME; a team of one
    when not bonded (VLANs ride a team)."""
    nics = [f"{name}-nic{k}" for k in range(len(members))]
    lines = [f"Use-VoeNic {quote(mac)} {quote(nic)}" for mac, nic in zip(members, nics, strict=True)]
    standby = nics[1:] if bond == "active-backup" else []
    lines.append(f"Set-VoeTeam {quote(name)} {_list(nics)} {quote(TEAM_MODES.get(bond or '', 'SwitchIndependent'))} "
                 f"{_list(standby)}")
    return lines


def _address(i: dict, owner: str | None, alias: str | None = None) -> list[str]:
    iface = ipaddress.ip_interface(i["address"])
    family = "IPv6" if iface.version == 6 else "IPv4"
    gateway = i["gateway"] if i["name"] == owner else ""
    name = alias or i["name"]
    return [f"Set-VoeMac {quote(name)} {quote(i['mac'])}",
            f"Set-VoeAddress {quote(name)} {quote(family)} {quote(iface.ip)} {iface.network.prefixlen} "
            f"{quote(gateway or '')} {_list(list(i.get('dns', ())))}"]


def script(config: dict) -> str:
    """The whole script for one configuration (docs/agent-protocol.md,
    section 2)."""
    owner = gateway_owner(config)
    ifaces = config["interfaces"]
    trunk = config.get("trunk")
    body = [f"# voe: the network of persona {config['persona']}, generation {config['generation']}, rendered by its "
            "agent"]
    if trunk:
        body += ["", f"# the trunk: {'a ' + trunk['bond'] + ' bond' if trunk.get('bond') else 'one NIC'}, "
                     "tagged vNICs as team interfaces"]
        body += _team("trunk", trunk.get("members") or [trunk["nic_mac"]], trunk.get("bond"))
        for i in ifaces:
            if not i["dedicated"] and not i["tagged"]:
                body += _address(i, owner, alias="trunk")
        for i in ifaces:
            if i["tagged"]:
                body += [f"Set-VoeTeamVlan 'trunk' {quote(i['name'])} {int(i['vlan'])}"] + _address(i, owner)
    for i in ifaces:
        if trunk and not i["dedicated"]:
            continue
        body.append("")
        if i.get("bond"):
            body.append(f"# {i['name']}: a {i['bond']} bond of its own")
            body += _team(i["name"], i["members"], i["bond"])
        else:
            body.append(f"# {i['name']}: {'a NIC of its own' if trunk else 'a NIC the hypervisor tags'}")
            body.append(f"Use-VoeNic {quote(i['nic_mac'])} {quote(i['name'])}")
        body += _address(i, owner)
    iqn = (config.get("san") or {}).get("initiator_iqn")
    if iqn:
        body += ["", "# the iSCSI initiator presents the persona's IQN", f"Set-VoeInitiator {quote(iqn)}"]
    return PRELUDE + "\n" + "\n".join(body) + "\n"
