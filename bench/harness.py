"""The controller and the lab as separate processes, as in production, for
benchmarks and the crash-safety test: the controller can be SIGKILLed and
restarted on the same store while the lab (the hardware) keeps running."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "review-lab.yaml"


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PORTS_BELOW = _ephemeral_floor()
_next_port = 10000 + random.randrange(max(1, _PORTS_BELOW - 10000))  # apart from another process's picks


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free now, below the kernel's ephemeral range, never the same
    twice in this process. An ephemeral one (``bind(0)``) could be taken
    by any client socket (the controller's, pyghmi's) between this pick
    and the lab's bind: with a thousand ports to hand out, one large
    benchmark in twenty failed so."""
    global _next_port
    while True:
        port = _next_port
        _next_port = port + 1 if port + 1 < _PORTS_BELOW else 10000
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def load(path: Path = EXAMPLE) -> dict:
    return YAML(typ="safe").load(path.read_text())


def relocate(doc: dict) -> dict:
    """Every port of the datacenter moved to a free one."""
    for h in doc["hosts"]:
        h["bmc"]["port"] = free_port(socket.SOCK_DGRAM if h["bmc"].get("driver", "ipmi") == "ipmi" else socket.SOCK_STREAM)
        if h.get("hypervisor"):
            h["hypervisor"]["url"] = f"http://127.0.0.1:{free_port()}"
        if h.get("storage", {}).get("settings", {}).get("url"):
            h["storage"]["settings"]["url"] = f"http://127.0.0.1:{free_port()}"
    for s in doc["switches"]:
        s["settings"]["port"] = free_port(socket.SOCK_DGRAM)
    return doc


def stop_process(*procs: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM to each at once, then SIGKILL to those not gone after
    ``grace`` seconds: several stop side by side, each in its own time."""
    for proc in procs:
        proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def dump(doc: dict) -> str:
    buf = io.StringIO()
    YAML().dump(doc, buf)
    return buf.getvalue()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def helpers_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time so far of the processes a controller started (its agent
    service, power and probe processes), by what each is."""
    out: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != pid:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            what = "agent service" if b"voe.api.agent_service" in argv else "driver processes"
            out[what] = out.get(what, 0.0) + cpu_seconds(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return out


def lab_alone(doc: dict, workdir: Path) -> subprocess.Popen:
    """``voe lab up`` for ``doc`` with no controller (its machines boot
    nothing), returned once its control port answers."""
    f = workdir / "dc.yaml"
    f.write_text(dump(doc))
    port = free_port()
    lab = subprocess.Popen([sys.executable, "-m", "voe.cli.main", "lab", "up", "-f", str(f), "--control-port",
                            str(port), "--state-dir", str(workdir / "lab"), "--controller", "http://127.0.0.1:9"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=os.environ)
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/status", timeout=1).raise_for_status()
            return lab
        except httpx.HTTPError:
            if lab.poll() is not None:
                raise RuntimeError("the lab exited before it answered") from None
            time.sleep(0.05)


class Stack:
    """A controller and the lab, each a process of its own; with
    ``agent_service``, the controller serves booting machines and agents
    from its agent service (``voe serve --agent-port``), and the lab's
    machines and agents are pointed there (``agents_url``). ``lab_nice``:
    the lab's CPU niceness (default: ``voe lab up``'s own). ``public``:
    the address the controller gives machines (the lab network's gateway,
    for KVM machines), and ``lab_args`` more options for ``voe lab up``."""

    def __init__(self, doc: dict, workdir: Path, env: dict[str, str] | None = None, agent_service: bool = True,
                 lab_nice: int | None = None, public: str | None = None, lab_args: tuple[str, ...] = ()):
        self.doc = doc
        self.lab_nice = lab_nice
        self.public = public
        self.lab_args = lab_args
        self.workdir = workdir
        self.env = {**os.environ, **(env or {}), "VOE_DATA_DIR": str(workdir / "data")}
        self.port, self.lab_port, self.boot_port = free_port(), free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.boot_url = f"http://127.0.0.1:{self.boot_port}"
        self.ca = workdir / "data" / "ca.pem"
        self.agent_port = free_port() if agent_service else None
        self.agents_url = f"https://127.0.0.1:{self.agent_port}" if agent_service else self.url
        self.file = workdir / "dc.yaml"
        self.file.write_text(dump(doc))
        self.controller: subprocess.Popen | None = None
        self.lab_proc: subprocess.Popen | None = None
        self.http: httpx.Client | None = None

    def _voe(self, *args: str, log: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "voe.cli.main", *args], env=self.env,
                                stdout=open(self.workdir / log, "a"), stderr=subprocess.STDOUT)

    def start_controller(self, *serve_args: str) -> None:
        """``serve_args``: more options for ``voe serve`` (``--no-reconcile``: its API alone)."""
        agents = ("--agent-port", str(self.agent_port)) if self.agent_port else ()
        self.controller = self._voe("serve", "--port", str(self.port), "--boot-port", str(self.boot_port), *agents,
                                    *serve_args, log="controller.log")
        deadline = time.monotonic() + 30
        while True:
            try:
                verify = ssl.create_default_context(cafile=self.ca) if self.ca.exists() else None
                if verify and all(httpx.get(f"{u}/healthz", timeout=1, verify=verify).status_code == 200
                                  for u in {self.url, self.agents_url}):
                    break
            except httpx.HTTPError:
                pass
            if self.controller.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("controller did not start: " + (self.workdir / "controller.log").read_text()[-2000:])
            time.sleep(0.1)
        token = (self.workdir / "data" / "admin-token").read_text().strip()
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30,
                                 verify=ssl.create_default_context(cafile=self.ca))

    def kill_controller(self) -> None:
        """SIGKILL: no cleanup, no goodbye."""
        self.controller.send_signal(signal.SIGKILL)
        self.controller.wait()

    def start(self) -> Stack:
        """The controller, the datacenter applied, then the lab; whatever
        started is stopped again if the rest fails (a controller left
        running would skew every later benchmark's figures)."""
        # a benchmark stopped by ``timeout`` (SIGTERM) stops its stack too
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Stack:
        if self.public:
            self.start_controller("--public-url", f"https://{self.public}:{self.agent_port or self.port}",
                                  "--public-boot-url", f"http://{self.public}:{self.boot_port}")
        else:
            self.start_controller()
        r = self.http.post("/api/v1/apply", json={"document": self.doc})
        r.raise_for_status()
        boot_url = f"http://{self.public}:{self.boot_port}" if self.public else self.boot_url
        self.lab_proc = self._voe("lab", "up", "-f", str(self.file), "--controller", boot_url, *self.lab_args,
                                  "--control-port", str(self.lab_port), "--state-dir", str(self.workdir / "lab"),
                                  *(("--nice", str(self.lab_nice)) if self.lab_nice is not None else ()), log="lab.log")
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{self.lab_port}/status", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if self.lab_proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("lab did not start: " + (self.workdir / "lab.log").read_text()[-2000:]) from None
                time.sleep(0.2)
        # the controller saw the lab's hypervisors absent before the lab began
        while (down := self.http.get("/api/v1/status").json()["hypervisors_down"]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the controller never heard hypervisor(s) {down}")
            time.sleep(0.1)
        return self

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        """``method path`` of the controller's API."""
        return self.http.request(method, path, **kw)

    def lab(self, method: str, path: str, **kw) -> dict:
        r = httpx.request(method, f"http://127.0.0.1:{self.lab_port}{path}", timeout=30, **kw)
        r.raise_for_status()
        return r.json()

    def fault(self, target: str, fault: str) -> None:
        self.lab("POST", "/fault", json={"target": target, "fault": fault})

    def truth(self) -> dict:
        return self.lab("GET", "/truth")

    def status(self, persona: str) -> dict:
        return self.http.get(f"/api/v1/personas/{persona}/status").json()

    def wait(self, persona: str, pred, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                s = self.status(persona)
                if pred(s):
                    return s
            except (httpx.HTTPError, json.JSONDecodeError):
                pass  # the controller may be restarting
            if time.monotonic() > deadline:
                raise TimeoutError(f"{persona} did not settle: {s if 's' in dir() else '?'}")
            time.sleep(0.05)

    def stop(self) -> None:
        """The controllers first: stopped after the lab, a controller would
        first wait out its calls to devices that are gone."""
        if self.http is not None:
            self.http.close()  # a kept TLS connection would hold the controller's stop (see voe.process.GRACE)
        self.stop_controllers()
        if self.lab_proc is not None and self.lab_proc.poll() is None:
            stop_process(self.lab_proc)
        reap_agents(self.workdir / "lab")

    def stop_controllers(self) -> None:
        if self.controller is not None and self.controller.poll() is None:
            stop_process(self.controller)


class Cluster(Stack):
    """Several controllers on one PostgreSQL (``database_url``), sharing
    one data dir (its CA, its key for sealed secrets, its admin token), and
    the lab's machines booting from whichever of their boot ports answers.
    Controller ``i`` is ``procs[i]``; ``http`` talks to the first that
    answers. ``postgres``: the private server behind ``database_url``, for
    the faults that restart it."""

    def __init__(self, doc: dict, workdir: Path, database_url: str, controllers: int = 3,
                 env: dict[str, str] | None = None, lab_nice: int | None = None,
                 postgres: PrivatePostgres | None = None):
        super().__init__(doc, workdir, {**(env or {}), "VOE_DATABASE_URL": database_url}, lab_nice=lab_nice)
        self.postgres = postgres
        self.ports = [self.port] + [free_port() for _ in range(controllers - 1)]
        self.boot_ports = [self.boot_port] + [free_port() for _ in range(controllers - 1)]
        self.agent_ports = [self.agent_port] + [free_port() for _ in range(controllers - 1)]
        self.urls = [f"https://127.0.0.1:{p}" for p in self.ports]
        self.boot_url = ",".join(f"http://127.0.0.1:{p}" for p in self.boot_ports)
        self.procs: list[subprocess.Popen | None] = [None] * controllers
        self._answered = 0

    def start_controller(self, *serve_args: str, i: int | None = None) -> None:
        """Controller ``i`` (every one, when None), each answering before
        this returns."""
        for n in range(len(self.procs)) if i is None else [i]:
            self.procs[n] = self._voe("serve", "--name", f"c{n}", "--port", str(self.ports[n]), "--boot-port",
                                      str(self.boot_ports[n]), "--agent-port", str(self.agent_ports[n]), *serve_args,
                                      log=f"controller-{n}.log")
            self._until_answers(n)
        self.controller = next(p for p in self.procs if p is not None and p.poll() is None)
        if self.http is None:
            token = (self.workdir / "data" / "admin-token").read_text().strip()
            self.http = httpx.Client(base_url=self.urls[0], headers={"Authorization": f"Bearer {token}"}, timeout=10,
                                     verify=ssl.create_default_context(cafile=self.ca))

    def _until_answers(self, n: int) -> None:
        deadline = time.monotonic() + 60
        urls = [self.urls[n], f"https://127.0.0.1:{self.agent_ports[n]}"]
        while True:
            try:
                if self.ca.exists() and all(httpx.get(f"{u}/healthz", timeout=1, verify=ssl.create_default_context(
                        cafile=self.ca)).status_code == 200 for u in urls):
                    return
            except httpx.HTTPError:
                pass
            if self.procs[n].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"controller {n} did not start: "
                                   + (self.workdir / f"controller-{n}.log").read_text()[-2000:])
            time.sleep(0.1)

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        """``method path`` of the first controller that answers, the one
        that answered last tried first; a 503 (its store out of reach)
        counts as no answer while another controller may still give one.
        A read that takes over 2 s goes to the next controller (this one may
        be paused); a write goes on to another only when this one refused
        the connection: one taking its time may be doing it (clearing a
        host powers it off first), and doing it twice is not asking twice."""
        reading = method == "GET"
        kw.setdefault("timeout", 2 if reading else 30)
        unanswered = httpx.HTTPError if reading else httpx.ConnectError
        order = sorted(range(len(self.urls)), key=lambda n: n != self._answered)
        last: httpx.Response | None = None
        for n in order:
            p = self.procs[n]
            if p is None or p.poll() is not None:
                continue
            try:
                r = self.http.request(method, self.urls[n] + path, **kw)
            except unanswered:
                continue
            if r.status_code != 503:
                self._answered = n
                return r
            last = r
        if last is not None:
            return last
        raise RuntimeError("no controller answers")

    def get(self, path: str, **kw) -> httpx.Response:
        return self.request("GET", path, **kw)

    def controllers(self) -> list[dict]:
        return self.get("/api/v1/controllers").json()

    def leader(self, timeout: float = 10.0) -> int:
        """The index of the controller that leads, once one does."""
        deadline = time.monotonic() + timeout
        while True:
            leaders = [c for c in self.controllers() if c["leader"]]
            if leaders:
                return int(leaders[0]["name"][1:])
            if time.monotonic() > deadline:
                raise TimeoutError("no controller leads")
            time.sleep(0.05)

    def kill(self, n: int) -> None:
        self.procs[n].send_signal(signal.SIGKILL)
        self.procs[n].wait()

    def pause(self, n: int, paused: bool) -> None:
        self.procs[n].send_signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def status(self, persona: str) -> dict:
        r = self.get(f"/api/v1/personas/{persona}/status")
        r.raise_for_status()
        return r.json()

    def stop_controllers(self) -> None:
        """All at once: one by one, each stop would hand the lead to the next."""
        live = [p for p in self.procs if p is not None and p.poll() is None]
        for p in live:
            p.send_signal(signal.SIGCONT)  # a paused one hears its SIGTERM
        stop_process(*live)


class PrivatePostgres:
    """A PostgreSQL server of its own in ``where`` (Debian's server
    binaries, run as the ``postgres`` user when root), so that restarting
    it touches no other database on the machine."""

    def __init__(self, where: Path):
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            raise FileNotFoundError("no PostgreSQL server binaries under /usr/lib/postgresql "
                                    "(Debian's postgresql package) to run a private server")
        self.bin, self.dir, self.port = bins[-1], where, free_port()
        self.url = f"postgresql+psycopg://voe@127.0.0.1:{self.port}/voe"

    def _as_postgres(self, *argv: str) -> None:
        run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*run_as, *argv], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.dir), "-w", "-l", str(self.dir / "log"),
                          "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start")

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.dir), "-w", "-m", mode, "stop")

    def __enter__(self) -> PrivatePostgres:
        self.dir.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.dir), "-U", "voe", "--auth=trust", "-E", "UTF8")
        self.start()
        self._as_postgres(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "voe", "voe")
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def reap_agents(lab_dir: Path) -> None:
    """Kill the lab agents still running from ``lab_dir``: a lab killed
    before it had powered off its thousand machines leaves their agents,
    in sessions of their own, beating at a controller gone, and every later
    benchmark on the machine shares its cores with them."""
    marker = f"--root {lab_dir}/".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker in (proc / "cmdline").read_bytes().replace(b"\0", b" "):
                os.kill(int(proc.name), signal.SIGKILL)
        except OSError:
            continue  # gone meanwhile, or not ours to read
