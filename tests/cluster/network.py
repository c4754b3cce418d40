"""Test hosts on a private network: one Linux network namespace per host, joined by a bridge that lives in a
"switch" namespace of its own, so that nothing is added to the machine's own namespace (no interface, route,
bridge or firewall rule). Every address is in SUBNET, which exists only inside these namespaces.

    net = Network.create(["data", "emu", "w1"])        # namespaces wxpc-<pid>-sw, wxpc-<pid>-data, ...
    proc = net.spawn("w1", ["python", ...], env=..., log=path)
    net.cut("w1") / net.restore("w1")                  # the host's link down / up, from inside its namespace
    net.kill_host("w1")                                # SIGKILL every process of the host
    net.destroy()                                      # every process and namespace gone

Namespaces are named `wxpc-<pid of the pytest process>-<host>`: `destroy()` runs in a finally, at exit, and
`remove_stale()` removes what a killed earlier run (its pid gone) left behind before a new one starts.
Processes are found by namespace (`ip netns pids`), so a host's every process is killed, children included.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "wxpc-"
# A test-only subnet: it exists only on the veth ends inside the namespaces created here.
SUBNET = "10.231.0"
IP = "ip"


def _ip(*args: str, check: bool = True) -> str:
    done = subprocess.run([IP, *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def namespaces() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def namespace_pids(namespace: str) -> list[int]:
    return [int(pid) for pid in _ip("netns", "pids", namespace, check=False).split()]


def _remove_namespace(namespace: str) -> None:
    for _ in range(50):
        pids = namespace_pids(namespace)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    _ip("netns", "del", namespace, check=False)


def remove_stale() -> None:
    """Namespaces (and their processes) of an earlier run whose pytest process no longer exists."""
    for namespace in namespaces():
        if not namespace.startswith(PREFIX):
            continue
        owner = namespace[len(PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and Path(f"/proc/{owner}").exists():
            continue
        _remove_namespace(namespace)


@dataclass
class Network:
    hosts: dict[str, str]  # host name -> address
    tag: str
    spawned: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def create(cls, names: Sequence[str]) -> Network:
        remove_stale()
        net = cls(hosts={}, tag=f"{PREFIX}{os.getpid()}")
        atexit.register(net.destroy)
        try:
            switch = net.namespace("sw")
            _ip("netns", "add", switch)
            _ip("-n", switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", switch, "link", "set", "br0", "up")
            for number, name in enumerate(names, start=2):
                namespace, address = net.namespace(name), f"{SUBNET}.{number}"
                _ip("netns", "add", namespace)
                # Both ends are created inside namespaces: the switch port and the host's eth0.
                _ip(
                    "-n", switch, "link", "add", f"p-{name}", "type", "veth", "peer", "name", "eth0", "netns", namespace
                )
                _ip("-n", switch, "link", "set", f"p-{name}", "master", "br0", "up")
                _ip("-n", namespace, "link", "set", "lo", "up")
                _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
                _ip("-n", namespace, "link", "set", "eth0", "up")
                net.hosts[name] = address
        except BaseException:
            net.destroy()
            raise
        return net

    def namespace(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def address(self, host: str) -> str:
        return self.hosts[host]

    def spawn(
        self, host: str, argv: Sequence[str], *, env: dict[str, str], log: Path, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            process = subprocess.Popen(
                [IP, "netns", "exec", self.namespace(host), *argv],
                env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.spawned.append(process)
        return process

    def run(
        self, host: str, argv: Sequence[str], *, env: dict[str, str], cwd: Path | None = None, timeout: float = 600
    ) -> str:
        """Runs a command on the host to completion; its stdout, or an error with its output."""
        done = subprocess.run(
            [IP, "netns", "exec", self.namespace(host), *argv],
            env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:4])} on {host} failed ({done.returncode}):\n{done.stderr[-4000:]}")
        return done.stdout

    def pids(self, host: str) -> list[int]:
        return namespace_pids(self.namespace(host))

    def kill_host(self, host: str) -> int:
        """SIGKILL every process of the host at once, as a machine that loses power; how many there were."""
        pids = self.pids(host)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.pids(host) and time.monotonic() < deadline:
            time.sleep(0.05)
        for process in self.spawned:
            process.poll()  # reaps the killed ones
        return len(pids)

    def cut(self, host: str) -> None:
        """The host's only link goes down (its cable pulled): packets are dropped, nobody is told."""
        _ip("-n", self.namespace(host), "link", "set", "eth0", "down")

    def restore(self, host: str) -> None:
        _ip("-n", self.namespace(host), "link", "set", "eth0", "up")

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 15) -> None:
        """SIGTERM to the process's group, SIGKILL after `timeout`."""
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def destroy(self) -> None:
        """Every process in the namespaces killed, every namespace removed; safe to call twice."""
        for process in self.spawned:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        for namespace in namespaces():
            if namespace.startswith(f"{self.tag}-"):
                _remove_namespace(namespace)
        for process in self.spawned:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
