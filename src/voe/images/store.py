"""Where persona images live: templates (immutable, versioned) and each
persona's own clone. ``ImageStore`` is the interface the controller uses;
``LocalImageStore`` keeps everything under one directory, which the
storage service exports (nfs-ganesha for trees, tgt for disk images).

    ROOT/templates/NAME/vN/template.json  + root/ (a tree) or disk.raw|disk.qcow2
    ROOT/personas/NAME/image.json         + root/ or disk.*
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from voe.errors import Conflict, NotFound
from voe.images.capture import clean_root
from voe.images.clone import CloneReport, clone_disk, clone_file, clone_tree
from voe.images.customize import customize_root
from voe.images.disk_clean import clean_disk

NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DISKS = ("disk.qcow2", "disk.raw")


@dataclass
class TemplateVersion:
    name: str
    version: int
    kind: str  # tree or disk
    boot: str  # linux-nfs or iscsi
    description: str
    created: str
    source: str
    bytes: int = 0


@dataclass
class PersonaImage:
    persona: str
    template: str
    version: int
    path: str  # the root tree or disk image the storage service exports
    method: str
    bytes_written: int
    created: str
    customized: list[str] = field(default_factory=list)


class ImageStore(ABC):
    @abstractmethod
    def templates(self) -> list[TemplateVersion]:
        """The latest version of every template."""

    @abstractmethod
    def versions(self, name: str) -> list[TemplateVersion]: ...

    @abstractmethod
    def create_template(self, name: str, source: Path, description: str = "", boot: str | None = None,
                        clean: bool = False) -> tuple[TemplateVersion, list[str]]:
        """A new version of ``name`` from a directory or disk image;
        ``clean`` removes machine-specific files (capture)."""

    @abstractmethod
    def delete_template(self, name: str) -> None: ...

    @abstractmethod
    def clone(self, template: str, persona: str, version: int | None = None,
              ssh_keys: list[str] | None = None) -> PersonaImage: ...

    @abstractmethod
    def persona_image(self, persona: str) -> PersonaImage | None: ...

    @abstractmethod
    def capture(self, persona: str, as_template: str, description: str = "") -> tuple[TemplateVersion, list[str]]: ...

    @abstractmethod
    def delete_persona_image(self, persona: str) -> None: ...


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


class LocalImageStore(ImageStore):
    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "templates").mkdir(parents=True, exist_ok=True)
        (self.root / "personas").mkdir(parents=True, exist_ok=True)

    # --- templates ------------------------------------------------------------

    def _tdir(self, name: str) -> Path:
        return self.root / "templates" / name

    def versions(self, name: str) -> list[TemplateVersion]:
        metas = sorted(self._tdir(name).glob("v*/template.json"), key=lambda f: int(f.parent.name[1:]))
        return [TemplateVersion(**json.loads(f.read_text())) for f in metas]

    def templates(self) -> list[TemplateVersion]:
        out = []
        for d in sorted((self.root / "templates").iterdir()):
            vs = self.versions(d.name)
            if vs:
                out.append(vs[-1])
        return out

    def _version(self, name: str, version: int | None) -> TemplateVersion:
        vs = self.versions(name)
        if not vs:
            raise NotFound("template", name)
        if version is None:
            return vs[-1]
        for v in vs:
            if v.version == version:
                return v
        raise NotFound("template version", f"{name} v{version}")

    def _payload(self, d: Path) -> Path:
        if (d / "root").is_dir():
            return d / "root"
        return next(d / n for n in DISKS if (d / n).exists())

    def create_template(self, name, source, description="", boot=None, clean=False):
        if not NAME.match(name):
            raise Conflict(f"template name {name!r}: use lower-case letters, digits and '-'", ("name",))
        source = Path(source)
        if not source.exists():
            raise NotFound("source", str(source))
        existing = self.versions(name)
        version = (existing[-1].version if existing else 0) + 1
        final = self._tdir(name) / f"v{version}"
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=final.parent))  # appears whole or not at all
        try:
            if source.is_dir():
                kind = "tree"
                clone_tree(source, staging / "root")
                cleaned = clean_root(staging / "root") if clean else []
                payload = staging / "root"
            else:
                kind = "disk"
                payload = staging / ("disk.qcow2" if source.suffix == ".qcow2" else "disk.raw")
                clone_file(source, payload)  # holes kept: a disk image is mostly unwritten
                cleaned = clean_disk(payload) if clean else []
            meta = TemplateVersion(name, version, kind, boot or ("linux-nfs" if kind == "tree" else "iscsi"),
                                   description or (existing[-1].description if existing else ""), _now(),
                                   str(source), _size(payload))
            (staging / "template.json").write_text(json.dumps(asdict(meta), indent=1))
            staging.chmod(0o755)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return meta, cleaned

    def delete_template(self, name):
        self._version(name, None)
        users = [p.persona for p in self._persona_images() if p.template == name]
        if users:
            raise Conflict(f"template {name!r} is the base of {', '.join(sorted(users))}; delete those first", ("name",))
        shutil.rmtree(self._tdir(name))

    # --- personas ---------------------------------------------------------------

    def _pdir(self, persona: str) -> Path:
        return self.root / "personas" / persona

    def _persona_images(self) -> list[PersonaImage]:
        return [PersonaImage(**json.loads(f.read_text())) for f in (self.root / "personas").glob("*/image.json")]

    def persona_image(self, persona):
        f = self._pdir(persona) / "image.json"
        return PersonaImage(**json.loads(f.read_text())) if f.exists() else None

    def clone(self, template, persona, version=None, ssh_keys=None):
        t = self._version(template, version)
        if self.persona_image(persona) is not None:
            raise Conflict(f"persona {persona!r} already has an image (from {self.persona_image(persona).template}); "
                           "delete it first", ("name",))
        src = self._payload(self._tdir(template) / f"v{t.version}")
        d = self._pdir(persona)
        shutil.rmtree(d, ignore_errors=True)  # leftovers of an interrupted clone
        d.mkdir(parents=True)
        if t.kind == "tree":
            report: CloneReport = clone_tree(src, d / "root")
            customized = customize_root(d / "root", persona, ssh_keys)
            path = d / "root"
        else:
            path = d / src.name
            report = clone_disk(src, path)
            customized = []  # a disk image is customized by the persona's agent at first boot
        image = PersonaImage(persona, template, t.version, str(path), report.method, report.bytes_written, _now(),
                             customized)
        (d / "image.json").write_text(json.dumps(asdict(image), indent=1))
        return image

    def capture(self, persona, as_template, description=""):
        image = self.persona_image(persona)
        if image is None:
            raise NotFound("persona image", persona)
        return self.create_template(as_template, Path(image.path), description or f"captured from {persona}",
                                    clean=True)

    def delete_persona_image(self, persona):
        shutil.rmtree(self._pdir(persona), ignore_errors=True)
