"""A local anvil node as a child process: the embedded chain of the single-machine setup.

The node is the platform binary from `@foundry-rs/anvil-<os>-<arch>` (pinned in package.json),
started directly rather than through `node_modules/.bin/anvil`: that Node wrapper only forwards
SIGTERM and SIGINT, so a killed server left the binary running. Started directly, the binary
gets a parent-death signal (Linux: `PR_SET_PDEATHSIG` = SIGTERM), so when the server dies, even
by SIGKILL, anvil dumps its state and exits instead of living on as an orphan. (The signal
follows the *thread* that started the node: start it from a thread that outlives it.) It still
runs in its own process group, so a Ctrl-C at the terminal reaches the server, which stops the
node cleanly; `stop()` waits for the whole group before it returns: only then is the state
file complete.

One state file, one writer. An orphan that kept running once wrote an older state over the
file after a newer node had used it, rolling the chain back. So the node holds an exclusive
`flock` on `<state>.lock`, inherited by the anvil process itself: while any node of ours (even
an orphan) is alive, the lock is taken. A new start that finds it taken looks at the holder
recorded in the file: a node whose starting process still lives is refused (one-line reason);
an orphan (its starter is gone) is sent SIGTERM, so it dumps the newest state and exits, and
the new node loads that. Nodes that hold no lock (started by an older version, or by hand) but
name the same state file are refused too: whose they are cannot be told.

anvil rewrites the state file in place, so a crash during a periodic dump can leave it
truncated. After each clean stop the file is copied to `<state>.bak`, and a start that
cannot load the state falls back to that copy (keeping the bad file aside).

The embedded dev chain uses a fixed chain id and anvil's well-known test mnemonic, so the
anchoring key is known in advance: the first dev account (`DEV_ACCOUNTS[0]`) deploys the
contract and anchors. Those keys are public; never use them on a chain with real value.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from provenance.chain import ChainUnavailable

__all__ = [
    "ANVIL_WRAPPER",
    "DEFAULT_ANVIL_BINARY",
    "DEV_ACCOUNTS",
    "DEV_CHAIN_ID",
    "DEV_MNEMONIC",
    "AnvilProcess",
    "DevAccount",
    "rpc_answers",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
ANVIL_WRAPPER = REPO_ROOT / "node_modules" / ".bin" / "anvil"


def _platform_binary() -> Path:
    """The binary the wrapper would start (its optional dependency for this OS and CPU), else the wrapper."""
    system = {"linux": "linux", "darwin": "darwin"}.get(sys.platform)
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    if system and arch:
        binary = REPO_ROOT / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    return ANVIL_WRAPPER


DEFAULT_ANVIL_BINARY = _platform_binary()

DEV_CHAIN_ID = 31337
DEV_MNEMONIC = "test test test test test test test test test test test junk"


@dataclass(frozen=True)
class DevAccount:
    address: str
    private_key: str


# The first accounts anvil derives from DEV_MNEMONIC (m/44'/60'/0'/0/i). Public knowledge.
DEV_ACCOUNTS: tuple[DevAccount, ...] = (
    DevAccount(
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    ),
    DevAccount(
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    ),
    DevAccount(
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    ),
)

_LOG_TAIL = 4000
_RUNNING: set[AnvilProcess] = set()  # strong references: an unreferenced node still gets stopped


@atexit.register
def _stop_all() -> None:
    """A node left running when the interpreter exits still gets its SIGTERM (and dumps its state)."""
    for node in list(_RUNNING):
        with contextlib.suppress(Exception):
            node.stop()


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def rpc_answers(rpc_url: str, timeout: float = 1.0) -> int | None:
    """The chain id if `rpc_url` answers `eth_chainId`, else None (a cheap liveness probe)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(rpc_url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            result = json.loads(response.read())["result"]
        return int(result, 16)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _live_group_members(pgid: int) -> list[int]:
    """Pids in process group `pgid` that are not zombies.

    Zombies count as gone: an orphaned binary is reparented to PID 1, which in containers
    often never reaps it, yet a zombie has finished writing its state.
    """
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: fall back to "does any process have this group"
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _wait_group(pgid: int, timeout: float) -> bool:
    """Whether every live member of process group `pgid` is gone within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while _live_group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child get SIGTERM when its parent dies (Linux), else None.

    Resolved before the fork, so the child only makes one system call before it execs.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: no signal would ever come
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process from /proc, or None if it is gone (or no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    """Whether `pid` runs (zombies count as gone: they have closed their files)."""
    info = _proc_stat(pid)
    if info is not None:
        return info[0] != "Z"
    if Path("/proc").is_dir():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _nodes_naming(state_file: Path) -> list[int]:
    """Live processes (not us) whose command line has `--state <state_file>`: other writers of it (Linux)."""
    target = state_file.resolve()
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"--state" not in argv:
                continue
            i = argv.index(b"--state")
            named = Path(os.fsdecode(argv[i + 1])) if i + 1 < len(argv) else None
            if named is None:
                continue
            if not named.is_absolute():
                named = Path(os.readlink(entry / "cwd")) / named
        except (OSError, ValueError):
            continue
        if named.resolve() == target and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


class AnvilProcess:
    """One anvil node on a loopback port, optionally persisted to a state file.

    `state_file` is loaded at start (if it exists) and written at stop (SIGTERM) and every
    `state_interval` seconds, so at most that much is lost if the machine dies. Without a
    state file the chain lives in memory only. `die_with_parent=False` lets the node outlive
    this process (tests use it to make an orphan); the state-file lock still guards the file.
    """

    def __init__(
        self,
        state_file: str | os.PathLike[str] | None = None,
        *,
        binary: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        chain_id: int = DEV_CHAIN_ID,
        mnemonic: str = DEV_MNEMONIC,
        accounts: int = 10,
        state_interval: int | None = 5,
        block_time: float | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 20.0,
        log_file: str | os.PathLike[str] | None = None,
        quiet: bool = True,
        extra_args: Sequence[str] = (),
        die_with_parent: bool = True,
        port_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.state_file = Path(state_file) if state_file is not None else None
        # Without a fixed `port`: the port of the last start is remembered here and asked for again,
        # so the RPC URL stays the same across restarts (another free port if it is taken).
        self.port_file = Path(port_file) if port_file is not None else None
        self.binary = Path(binary) if binary is not None else DEFAULT_ANVIL_BINARY
        self.host = host
        self.requested_port = port
        self.chain_id = chain_id
        self.mnemonic = mnemonic
        self.accounts = accounts
        self.state_interval = state_interval
        self.block_time = block_time
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.log_file = Path(log_file) if log_file is not None else None
        self.quiet = quiet
        self.extra_args = tuple(extra_args)
        self.die_with_parent = die_with_parent
        self._lock_fd: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._port: int | None = None
        self._serving = False

    # -- state -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("anvil is not running")
        return self._port

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _command(self, port: int) -> list[str]:
        cmd = [
            str(self.binary),
            "--host",
            self.host,
            "--port",
            str(port),
            "--chain-id",
            str(self.chain_id),
            "--mnemonic",
            self.mnemonic,
            "--accounts",
            str(self.accounts),
        ]
        if self.state_file is not None:
            cmd += ["--state", str(self.state_file)]
            if self.state_interval:
                cmd += ["--state-interval", str(self.state_interval)]
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time)]
        if self.quiet:
            cmd.append("--quiet")  # errors are still printed; a line per request would pile up
        cmd += self.extra_args
        return cmd

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        try:
            self._log.flush()
            self._log.seek(0, os.SEEK_END)
            size = self._log.tell()
            self._log.seek(max(0, size - _LOG_TAIL))
            return self._log.read().decode(errors="replace").strip()
        except OSError:
            return ""

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def backup_file(self) -> Path | None:
        """Copy of the state as of the last clean stop (anvil rewrites the state file in place)."""
        return self.state_file.with_name(self.state_file.name + ".bak") if self.state_file else None

    @property
    def lock_file(self) -> Path | None:
        """Held (flock) by the node and its starter while either lives: one writer per state file."""
        return self.state_file.with_name(self.state_file.name + ".lock") if self.state_file else None

    def start(self) -> Self:
        """Starts the node and returns once it answers JSON-RPC with the expected chain id.

        If anvil cannot load the state file (a crash during an in-place periodic dump leaves it
        truncated) and a backup from the last clean stop exists, the bad file is kept aside as
        `<state>.corrupt-<time>` and the backup is loaded instead: the chain goes back to that stop.
        Another node on the same state file is stopped first if it is an orphan, else refused.
        """
        if self.running:
            return self
        if not self.binary.exists():
            raise ChainUnavailable(f"anvil not found at {self.binary}; run `make setup` (npm ci)")
        if self.state_file is not None:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self._take_lock()
        try:
            if self.state_file is not None and (others := _nodes_naming(self.state_file)):
                raise ChainUnavailable(
                    f"anvil did not start: process(es) {', '.join(map(str, others))} also run anvil on "
                    f"{self.state_file} and would overwrite its state; stop them first"
                )
            error = self._start_with_port_retries()
            if error is not None and self._restore_backup(error):
                error = self._start_with_port_retries()
            if error is not None:
                raise ChainUnavailable(f"anvil did not start: {error}")
        except BaseException:
            self._release_lock()
            raise
        return self

    # -- the state-file lock ------------------------------------------------------------------

    def _take_lock(self) -> None:
        """Takes `<state>.lock`, first stopping an orphaned node that holds it (see the module docstring)."""
        path = self.lock_file
        assert path is not None
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if not _try_flock(fd):
                self._evict_holder(fd, path)
            self._write_holder(fd, None)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd

    def _evict_holder(self, fd: int, path: Path) -> None:
        """Refuses when the holder's starter lives; SIGTERMs an orphan and waits until its lock is free."""
        try:
            holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
            owner, node = int(holder.get("owner") or 0), int(holder.get("node") or 0)
        except (ValueError, TypeError, AttributeError):
            owner, node = 0, 0
        stat = _proc_stat(node) if node else None
        node_alive = node > 0 and _alive(node)
        if node_alive and stat is not None:
            orphan = stat[1] != owner  # reparented: the process that started it is gone
        else:  # no /proc: judge by the starter alone; no node: the starter itself holds the lock
            orphan = node_alive and not (owner > 0 and _alive(owner))
        gone = not orphan and not node_alive and not (owner > 0 and _alive(owner))
        # Neither lives any more: the holder exited between our try and our look (a node dumping its
        # state as its starter died). Its lock goes with it: wait for that, not refuse.
        if gone and self._wait_lock(fd, self.stop_timeout):
            return
        if not orphan:
            who = f"anvil pid {node} started by pid {owner}" if node_alive else f"pid {owner}"
            raise ChainUnavailable(
                f"anvil did not start: {self.state_file} is in use by {who} (lock {path}); "
                "two nodes on one state file overwrite each other's state"
            )
        # An orphan: SIGTERM makes it dump its (newest) state and exit; its exit frees the lock.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(node, signal.SIGTERM)
        if self._wait_lock(fd, self.stop_timeout):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(node, signal.SIGKILL)  # started with start_new_session: it leads its group
            os.kill(node, signal.SIGKILL)
        if not self._wait_lock(fd, 5.0):
            raise ChainUnavailable(
                f"anvil did not start: orphaned anvil pid {node} holds {path} and does not exit"
            )

    @staticmethod
    def _wait_lock(fd: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not _try_flock(fd):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    @staticmethod
    def _write_holder(fd: int, node: int | None) -> None:
        record = json.dumps({"owner": os.getpid(), "node": node}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # the node has exited (or never started): the lock is free now

    def _remembered_port(self) -> int | None:
        if self.port_file is None:
            return None
        try:
            port = int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return port if 0 < port < 65536 else None

    def _start_with_port_retries(self) -> str | None:
        remembered = self._remembered_port() if self.requested_port is None else None
        attempts = 1 if self.requested_port is not None else 3  # a picked free port can be taken
        error: str | None = None
        for attempt in range(attempts):
            port = self.requested_port or (remembered if attempt == 0 and remembered else None)
            error = self._start_once(port or _free_port(self.host))
            if error is None or "address already in use" not in error.lower():
                break
        if error is None and self.port_file is not None and self._port is not None:
            with contextlib.suppress(OSError):
                self.port_file.write_text(f"{self._port}\n")
        return error

    def _restore_backup(self, error: str) -> bool:
        state, backup = self.state_file, self.backup_file
        if state is None or backup is None or "--state" not in error:
            return False
        if not state.exists() or not backup.exists():
            return False
        state.rename(state.with_name(f"{state.name}.corrupt-{int(time.time())}"))
        shutil.copyfile(backup, state)
        return True

    def _save_backup(self) -> None:
        state, backup = self.state_file, self.backup_file
        if state is None or backup is None or not state.is_file() or state.stat().st_size == 0:
            return
        tmp = backup.with_name(backup.name + ".tmp")
        shutil.copyfile(state, tmp)
        os.replace(tmp, backup)

    def _start_once(self, port: int) -> str | None:
        """One start attempt; returns None on success, else why it failed (process cleaned up)."""
        if _listening(self.host, port):
            # Otherwise another node on this port could answer in place of ours.
            return f"address already in use: something listens on {self.host}:{port}"
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_file, "a+b")  # noqa: SIM115 - lives as long as the process
        else:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc = subprocess.Popen(
            self._command(port),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: see the module docstring
            # The node holds the state-file lock as long as it lives, even if we die first.
            pass_fds=(self._lock_fd,) if self._lock_fd is not None else (),
            preexec_fn=_die_with_parent_hook() if self.die_with_parent else None,
        )
        if self._lock_fd is not None:
            self._write_holder(self._lock_fd, self._proc.pid)
        self._port = port
        url = f"http://{self.host}:{port}"
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            chain_id = rpc_answers(url, timeout=0.5)
            if chain_id is not None and self._proc.poll() is None:
                if chain_id == self.chain_id:
                    self._serving = True
                    _RUNNING.add(self)
                    return None
                self._stop_process()
                return f"{url} answers with chain id {chain_id}, expected {self.chain_id}"
            if self._proc.poll() is not None:
                # The wrapper has exited: the binary has failed (or is still exiting).
                _wait_group(self._proc.pid, 2.0)
                tail = self._log_tail() or "no output"
                self._stop_process()
                return tail
            time.sleep(0.05)
        tail = self._log_tail()
        self._stop_process()
        return f"no JSON-RPC answer on {url} within {self.startup_timeout:.0f}s; {tail}"

    def stop(self) -> None:
        """SIGTERM (anvil dumps its state), wait for the node's process group, then free the state file."""
        self._stop_process()
        self._release_lock()

    def _stop_process(self) -> None:
        """SIGTERM, wait for the node (and, with the wrapper, the binary it started), kill if stuck."""
        proc, self._proc = self._proc, None
        served, self._serving = self._serving, False
        _RUNNING.discard(self)
        if proc is not None:
            pgid = proc.pid  # start_new_session: the wrapper leads its own group
            was_running = proc.poll() is None
            if was_running:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)  # a wrapper (if one was given) forwards it
            elif _live_group_members(pgid):  # a wrapper died alone: tell the binary directly
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGTERM)
            deadline = time.monotonic() + self.stop_timeout
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if _wait_group(pgid, max(0.1, deadline - time.monotonic())):
                if served and was_running:  # our SIGTERM, a clean exit: the state was dumped whole
                    with contextlib.suppress(OSError):  # a missing backup must not fail a stop
                        self._save_backup()
            else:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
                _wait_group(pgid, 2.0)
        if self._log is not None:
            self._log.close()
            self._log = None
        self._port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.rpc_url if self.running else "stopped"
        return f"AnvilProcess({where}, state_file={self.state_file})"
