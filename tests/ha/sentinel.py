"""A Redis Sentinel deployment of the test's own: one master, one replica and three sentinels, every one a real
Debian redis-server / redis-sentinel process on a free loopback port, with its files in a temporary directory.
The shared Redis on 6379 is never touched.

    cluster = SentinelCluster().start()
    cluster.env()            # REDIS_SENTINELS / REDIS_SENTINEL_MASTER / REDIS_URL for the project's processes
    cluster.failover()       # SENTINEL FAILOVER: the replica is promoted, the old master becomes its replica
    cluster.kill_master()    # SIGKILL the master; the sentinels agree it is down and promote the replica
    cluster.close()          # every process killed, the directory removed (also after a failed test)

The sentinels are tuned to notice a dead master within a second (`down-after-milliseconds 1000`); production
keeps Redis' defaults or its own (docs/deploy/redis-sentinel.md).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from tests.chaos.harness import free_port, wait_for

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_SENTINEL = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"
MASTER_NAME = "wxp-test"
# Lines printed at the end of the session (tests/ha/conftest.py): what the failover scenarios measured.
FIGURES: list[str] = []


def _client(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=0.5, decode_responses=True)


class _Process:
    def __init__(self, command: list[str], port: int) -> None:
        self.command = command
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


class SentinelCluster:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="wxp-sentinel-"))
        self.redis: dict[int, _Process] = {}
        self.sentinels: list[_Process] = []
        self.failovers = 0

    # --- the processes ------------------------------------------------------------------------------

    def _redis_node(self, name: str, *extra: str) -> _Process:
        port = free_port()
        node_dir = self.dir / name
        node_dir.mkdir()
        command = [
            REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir),
            "--save", "", "--appendonly", "no", "--protected-mode", "no", "--logfile", str(node_dir / "redis.log"),
            *extra,
        ]  # fmt: skip
        node = _Process(command, port)
        self.redis[port] = node
        node.start()
        wait_for(lambda: self._answers(port), timeout=20, what=f"redis-server {name} to answer PING")
        return node

    def _sentinel(self, index: int, master_port: int) -> _Process:
        port = free_port()
        config = self.dir / f"sentinel-{index}.conf"
        # Sentinel rewrites its configuration file (what it learns of replicas, other sentinels and epochs).
        config.write_text(
            f"port {port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.dir}\n"
            f"logfile {self.dir / f'sentinel-{index}.log'}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        node = _Process([REDIS_SENTINEL, str(config)], port)
        self.sentinels.append(node)
        node.start()
        wait_for(lambda: self._answers(port), timeout=20, what=f"sentinel {index} to answer PING")
        return node

    @staticmethod
    def _answers(port: int) -> bool:
        try:
            return bool(_client(port).ping())
        except redis.RedisError:
            return False

    def start(self) -> SentinelCluster:
        master = self._redis_node("a")
        replica = self._redis_node("b", "--replicaof", "127.0.0.1", str(master.port))
        wait_for(
            lambda: _client(replica.port).info("replication").get("master_link_status") == "up",
            timeout=20,
            what="the replica to sync with the master",
        )
        for index in range(3):
            self._sentinel(index, master.port)

        def everyone_known() -> bool:
            for sentinel in self.sentinels:
                # Raw replies: redis-py 6.4's parser of SENTINEL MASTER fails on its own keyword argument.
                reply = _client(sentinel.port).execute_command("SENTINEL", "MASTER", MASTER_NAME)
                state = dict(zip(reply[::2], reply[1::2], strict=True))
                if int(state["num-slaves"]) != 1 or int(state["num-other-sentinels"]) != 2:
                    return False
            return True

        wait_for(everyone_known, timeout=30, what="the sentinels to see the replica and each other", every=0.2)
        return self

    def close(self) -> None:
        for node in [*self.sentinels, *self.redis.values()]:
            node.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- what the project's processes are given -----------------------------------------------------

    @property
    def sentinel_addresses(self) -> str:
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def env(self) -> dict[str, str]:
        # REDIS_URL's host is the master's name only: the address comes from the sentinels.
        return {
            "REDIS_SENTINELS": self.sentinel_addresses,
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
            "REDIS_URL": f"redis://{MASTER_NAME}/0",
        }

    # --- the topology and the faults ----------------------------------------------------------------

    def master_port(self) -> int:
        """The master's port as the sentinels report it (any sentinel that answers)."""
        for sentinel in self.sentinels:
            if not sentinel.alive():
                continue
            try:
                _host, port = _client(sentinel.port).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
                return int(port)
            except (redis.RedisError, TypeError):
                continue
        raise AssertionError("no sentinel answered")

    def master(self) -> redis.Redis:
        return _client(self.master_port())

    def _wait_for_new_master(self, old: int, timeout: float = 30) -> int:
        def promoted() -> bool:
            # Done when every live sentinel's table (SENTINEL MASTER, what clients read) names a new master that
            # says it is one; GET-MASTER-ADDR-BY-NAME switches some 60 ms earlier.
            ports = set()
            for sentinel in self.sentinels:
                if sentinel.alive():
                    reply = _client(sentinel.port).execute_command("SENTINEL", "MASTER", MASTER_NAME)
                    ports.add(int(dict(zip(reply[::2], reply[1::2], strict=True))["port"]))
            if len(ports) != 1 or old in ports:
                return False
            try:
                return _client(ports.pop()).info("replication")["role"] == "master"
            except redis.RedisError:
                return False

        wait_for(promoted, timeout=timeout, what="the sentinels to promote the replica", every=0.1)
        self.failovers += 1
        return self.master_port()

    def failover(self) -> tuple[int, int]:
        """SENTINEL FAILOVER (a planned switch-over): (old master port, new master port) once promoted."""
        old = self.master_port()
        _client(self.sentinels[0].port).execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        started = time.monotonic()
        new = self._wait_for_new_master(old)
        self.last_promotion_seconds = time.monotonic() - started
        return old, new

    def wait_replicated(self, timeout: float = 30) -> None:
        """Until a live replica follows the current master, in sync."""
        master = self.master_port()

        def in_sync() -> bool:
            offset = int(_client(master).info("replication")["master_repl_offset"])
            for port, node in self.redis.items():
                if port != master and node.alive():
                    info = _client(port).info("replication")
                    if info.get("master_port") == master and info.get("master_link_status") == "up":
                        return int(info.get("slave_repl_offset", -1)) >= offset
            return False

        wait_for(in_sync, timeout=timeout, what="a replica in sync with the master", every=0.2)

    def kill_master(self) -> tuple[int, int]:
        """SIGKILL the master, as a crash or an OOM kill would: (old port, new port) once the sentinels promoted."""
        old = self.master_port()
        self.redis[old].kill()
        started = time.monotonic()
        new = self._wait_for_new_master(old)
        self.last_promotion_seconds = time.monotonic() - started
        return old, new
