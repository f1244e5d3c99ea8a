"""Which storage server holds a persona's image, and the access its
incarnations are granted there (the persona's own identity)."""

from __future__ import annotations

from tests.conftest import EXAMPLE
from voe.cli.yamlfile import DatacenterFile
from voe.domain.inventory import assign_identity, parse
from voe.domain.storage import access_for


def inventory():
    return assign_identity(parse(DatacenterFile(EXAMPLE).data()))


def test_an_nfs_root_is_granted_to_the_personas_address_on_the_storage_network():
    inv = inventory()
    host, access = access_for(inv, inv.by_name("personas")["bea-1"])
    storage_ip = next(str(v.ip) for v in inv.by_name("personas")["bea-1"].vnics if v.network == "storage")
    assert host.name == "dl380"
    assert (access.kind, access.path, access.initiator) == ("nfs", "/export/personas/bea-1", storage_ip)


def test_an_iscsi_lun_is_granted_to_the_personas_initiator_iqn():
    inv = inventory()
    oracle = inv.by_name("personas")["oracle"]
    host, access = access_for(inv, oracle)
    assert (host.name, access.kind, access.target, access.lun) == ("dl380", "iscsi", oracle.image.target_iqn, 1)
    assert access.initiator == oracle.san.initiator_iqn and access.initiator
    assert access.path == "/srv/voe/luns/oracle.img"  # no disk named: the server's LUN directory
    cloned = oracle.model_copy(deep=True)
    cloned.image.disk = "/var/lib/voe/images/personas/oracle/disk.raw"
    assert access_for(inv, cloned)[1].path == "/var/lib/voe/images/personas/oracle/disk.raw"  # a clone's own disk


def test_an_image_on_a_server_voe_does_not_manage_has_no_access_to_grant():
    inv = inventory()
    web = inv.by_name("personas")["web-1"].model_copy(deep=True)
    web.image.nfs_root = "192.0.2.9:/vol/web-1"
    assert access_for(inv, web) is None
