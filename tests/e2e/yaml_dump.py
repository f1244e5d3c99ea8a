"""YAML out, for the datacenter files tests write."""

from __future__ import annotations

import io

from ruamel.yaml import YAML


def dump(doc: dict) -> str:
    buf = io.StringIO()
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.dump(doc, buf)
    return buf.getvalue()
