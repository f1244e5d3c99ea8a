"""Clone 100 personas from one template on the local image store: seconds
and bytes actually written (target: under 10 s). The sample apache tree
(busybox + the voe agent, ~2 MiB) is the template.

    .venv/bin/python bench/clone.py [--personas 100] [--dir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from voe.images import samples
from voe.images.store import LocalImageStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--personas", type=int, default=100)
    ap.add_argument("--dir", type=Path, default=None, help="where the store goes (its file system decides reflinks)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="voe-clone-", dir=a.dir))
    try:
        samples.build_tree(work / "src", "apache", samples.ROLES["apache"][1])
        store = LocalImageStore(work / "images")
        t, _ = store.create_template("apache", work / "src")
        began = time.perf_counter()
        images = [store.clone("apache", f"web-{i}") for i in range(a.personas)]
        took = time.perf_counter() - began
        written = sum(i.bytes_written for i in images)
        methods = sorted({i.method for i in images})
        print(f"template apache: {t.bytes / 2**20:.1f} MiB")
        print(f"cloned {a.personas} personas in {took:.2f} s ({took / a.personas * 1000:.0f} ms each), "
              f"method {', '.join(methods)}, {written / 2**20:.0f} MiB written "
              f"({written / max(t.bytes * a.personas, 1):.0%} of full copies)")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
