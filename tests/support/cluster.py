"""A throwaway PostgreSQL cluster for the tests that break PostgreSQL on purpose
(``initdb`` in a temporary directory, a free port, ``pg_ctl``; never the machine's
server): it can be stopped, frozen and crashed.

As root, PostgreSQL's tools run as the ``postgres`` OS user (it refuses to run as root).
Without ``initdb`` the tests that need a cluster skip, except in CI (``CI`` set), where
they fail.
"""

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.processes import free_port

IN_CI = bool(os.environ.get("CI"))


def pg_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: ``pg_config --bindir``, the Debian layout, PATH."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                      key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit()
                      else 0, reverse=True)
    candidates += [Path(p) for p in versions]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    return None


def unavailable(reason: str) -> None:
    """Skip (locally) or fail (in CI) a test that needs a throwaway cluster."""
    if IN_CI:
        pytest.fail(f"a throwaway PostgreSQL cluster is needed in CI: {reason}")
    pytest.skip(f"needs a throwaway PostgreSQL cluster: {reason}")


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(stat.parent.name))
    return tree


@dataclass
class Cluster:
    """A throwaway PostgreSQL cluster on a free port, owned by the test that made it."""

    bindir: Path
    root: Path
    port: int
    as_user: list[str]
    #: processes stopped by :meth:`freeze`, continued by :meth:`thaw`
    frozen: list[int] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return self.url_of("postgres")

    def url_of(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        cmd = [*self.as_user, str(self.bindir / tool), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr}{done.stdout}"
                               f"\n{self.log_tail()}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions", timeout=120)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.root}'\nmax_connections = 100\n"
                       "shared_buffers = 32MB\nfsync = off\n")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "pg.log"), "-w",
                  "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def running(self) -> bool:
        cmd = [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"]
        return subprocess.run(cmd, capture_output=True).returncode == 0

    def log_tail(self, lines: int = 30) -> str:
        path = self.root / "pg.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def log_text(self) -> str:
        path = self.root / "pg.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- faults ---------------------------------------------------------------------

    def postmaster(self) -> int:
        """The postmaster's pid (first line of ``postmaster.pid``)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def processes(self) -> list[int]:
        """The postmaster and every process under it (backends, background workers)."""
        tree = _children()
        found = [self.postmaster()]
        for pid in found:  # grows while walking: breadth first
            found.extend(tree.get(pid, []))
        return found

    def freeze(self) -> int:
        """SIGSTOP the postmaster, then every process under it: connections stay open and
        new ones are accepted by the kernel, but nothing answers. Returns how many."""
        pm = self.postmaster()
        os.kill(pm, signal.SIGSTOP)  # first: it forks no new backend while frozen
        self.frozen = [pm]
        while True:  # a backend forked just before the postmaster stopped is caught here
            fresh = [p for p in self.processes() if p not in self.frozen]
            if not fresh:
                return len(self.frozen)
            for pid in fresh:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            self.frozen += fresh

    def thaw(self) -> None:
        """SIGCONT what :meth:`freeze` stopped (the postmaster last)."""
        for pid in reversed(self.frozen):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    def crash(self, settle: float = 5.0) -> tuple[int, int]:
        """``kill -9`` the postmaster, as a crash would. Its children notice and exit by
        themselves; any still there after ``settle`` seconds is killed too (a new
        postmaster refuses to start while they hold the old shared memory). Returns
        (processes that were running, stragglers killed)."""
        procs = self.processes()
        os.kill(procs[0], signal.SIGKILL)
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and any(_alive(p) for p in procs):
            time.sleep(0.05)
        stragglers = [p for p in procs if _alive(p)]
        for pid in stragglers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # the dead postmaster stays a zombie until its parent (init, since pg_ctl exited)
        # reaps it, and a new one refuses to start while the pid in postmaster.pid exists
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{p}").exists() for p in procs):
            if time.monotonic() > deadline:  # an init that does not reap: the pid is dead
                (self.data / "postmaster.pid").unlink(missing_ok=True)
                break
            time.sleep(0.05)
        return len(procs), len(stragglers)

    def crash_recoveries(self) -> int:
        """How many times the server log says it ran crash recovery."""
        return self.log_text().count("automatic recovery in progress")


@contextlib.contextmanager
def throwaway_cluster(prefix: str = "jobtrack-pg-") -> Iterator[Cluster]:
    """A fresh, started cluster; stopped (thawed first) and deleted afterwards."""
    bindir = pg_bindir()
    if bindir is None:
        unavailable("initdb and pg_ctl not found (pg_config, /usr/lib/postgresql/*/bin, PATH)")
        raise AssertionError  # (unreachable: skip or fail raised)
    as_user: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        runuser = shutil.which("runuser")
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = None
        if runuser is None or owner is None:
            unavailable("running as root without runuser or a 'postgres' OS user")
        as_user = [str(runuser), "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    pg = Cluster(bindir, root, free_port(), as_user)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.thaw()
        if pg.running():
            with contextlib.suppress(Exception):
                pg.stop()
        shutil.rmtree(root, ignore_errors=True)
