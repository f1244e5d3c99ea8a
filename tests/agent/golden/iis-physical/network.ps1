#Requires -RunAsAdministrator
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

# voe: the network of persona iis, generation 3, rendered by its agent

# the trunk: a active-backup bond, tagged vNICs as team interfaces
Use-VoeNic '00:0b:cd:09:00:01' 'trunk-nic0'
Use-VoeNic '00:0b:cd:09:00:02' 'trunk-nic1'
Set-VoeTeam 'trunk' @('trunk-nic0', 'trunk-nic1') 'SwitchIndependent' @('trunk-nic1')
Set-VoeMac 'trunk' '02:56:4f:00:01:01'
Set-VoeAddress 'trunk' 'IPv4' '10.0.3.21' 24 '' @()
Set-VoeTeamVlan 'trunk' 'front' 100
Set-VoeMac 'front' '02:56:4f:00:01:02'
Set-VoeAddress 'front' 'IPv4' '10.0.1.21' 24 '10.0.1.1' @('10.0.1.53')
Set-VoeTeamVlan 'trunk' 'back' 200
Set-VoeMac 'back' '02:56:4f:00:01:03'
Set-VoeAddress 'back' 'IPv4' '10.0.2.21' 24 '' @('10.0.2.53', '10.0.2.54')

# the iSCSI initiator presents the persona's IQN
Set-VoeInitiator 'iqn.2026-11.io.voe:persona:iis'
