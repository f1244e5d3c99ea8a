"""Datacenter files: YAML in, plain data out, and every problem pointed back
at its file and line, because "personas.web-1.vnics.0.ip" is not where an
operator's cursor is."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class FileError(Exception):
    pass


class DatacenterFile:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        yaml = YAML(typ="rt")
        try:
            self.tree = yaml.load(self.path.read_text())
        except FileNotFoundError:
            raise FileError(f"{self.path}: no such file") from None
        except MarkedYAMLError as e:
            mark = e.problem_mark
            raise FileError(f"{self.path}:{mark.line + 1}: {e.problem}") from None

    def data(self) -> Any:
        """Plain dicts and lists; ``${VAR}`` in a string is taken from the
        environment, so secrets can stay out of the file."""
        return _plain(self.tree, self)

    def line_of(self, loc: list | tuple) -> int:
        """Line (1-based) of the deepest node on ``loc``. Object names in the
        path (``personas.web-1``) are looked up by their ``name`` field."""
        node: Any = self.tree
        line = 1
        for part in loc:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, str):
                idx = next((i for i, o in enumerate(node) if isinstance(o, dict) and o.get("name") == part), None)
                if idx is None:
                    break
                line = node.lc.item(idx)[0] + 1
                node = node[idx]
            else:
                break
        return line

    def where(self, loc: list | tuple) -> str:
        return f"{self.path}:{self.line_of(loc)}"


def _plain(node: Any, f: DatacenterFile) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v, f) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, f) for v in node]
    if isinstance(node, str):
        def sub(m: re.Match) -> str:
            if m.group(1) not in os.environ:
                raise FileError(f"{f.path}: ${{{m.group(1)}}} is used but not set in the environment")
            return os.environ[m.group(1)]
        return _ENV_RE.sub(sub, str(node))
    return node
