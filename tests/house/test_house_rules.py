"""The house rules a newcomer relies on, checked by the tools that define
them: imports point one way (import-linter's contracts in pyproject.toml),
ruff is clean, the domain and the driver interface type-check, and no
module creates a thread pool, thread or lock of its own at import time:
concurrency belongs to the object that starts it (the controller's
``Workers``, the lab's ``Lab``)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "voe"
BIN = Path(sys.executable).parent

CONCURRENCY = {"ThreadPoolExecutor", "ProcessPoolExecutor", "Thread", "Lock", "RLock", "Semaphore",
               "BoundedSemaphore", "Condition", "Event", "Barrier"}
MODULE_STATE_GUARDS = {("drivers/switch/snmp.py", "_MIB_VIEW_LOCK")}
"""Module-level locks that guard a module-level cache of a library's (one
MIB view per process): not work, and owned by nobody but the cache."""


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_imports_point_one_way():
    r = run(str(BIN / "lint-imports"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_ruff_is_clean():
    r = run(str(BIN / "ruff"), "check", "src", "tests", "bench")
    assert r.returncode == 0, r.stdout[-3000:]


def test_the_domain_the_driver_interface_and_the_controller_type_check():
    r = run(str(BIN / "mypy"), "src/voe/domain", "src/voe/drivers/base.py", "src/voe/controller")
    assert r.returncode == 0, r.stdout[-3000:]


def _made_at_import(tree: ast.Module) -> list[tuple[str, str]]:
    """(name, what) for every module-level assignment of a concurrency object."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Call):
            func = node.value.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in CONCURRENCY:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                found += [(ast.unparse(t), called) for t in targets]
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            func = node.value.func
            if isinstance(func, ast.Attribute) and func.attr == "start":  # threading.Thread(...).start()
                found.append((ast.unparse(node.value), "a thread started at import"))
    return found


def test_no_module_creates_a_pool_a_thread_or_a_lock_at_import():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        for name, what in _made_at_import(ast.parse(path.read_text())):
            if (rel, name) not in MODULE_STATE_GUARDS:
                offenders.append(f"{rel}: {name} = {what}(...)")
    assert not offenders, "owned by no object:\n" + "\n".join(offenders)


def test_the_rule_above_sees_a_module_level_pool():
    """The check is not vacuous: the forms it must catch are caught."""
    tree = ast.parse("import threading\nfrom concurrent.futures import ThreadPoolExecutor\n"
                     "_POOL = ThreadPoolExecutor(max_workers=4)\nLOCK: threading.Lock = threading.Lock()\n"
                     "threading.Thread(target=print).start()\n")
    assert [n for n, _ in _made_at_import(tree)] == ["_POOL", "LOCK", "threading.Thread(target=print).start()"]


def test_the_cli_loads_no_database_library():
    """``voe`` talks to the controller over HTTP: an operator's command
    (and each of the many a test or a script runs) does not pay for
    SQLAlchemy and Alembic, which only ``voe serve`` and the store need."""
    code = "import sys, voe.cli.main; print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic')))"
    r = run(sys.executable, "-c", code)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]", r.stdout
