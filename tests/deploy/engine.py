"""A private Docker engine for the image test: Debian's dockerd on paths of its own, no network changes.

The daemon keeps its data under STATE (default /var/cache/wxp-image-test, outside the clone), so the base image
and the image's dependency layers survive between runs; one run at a time holds STATE/lock. Docker Hub is out
of reach here, so the base comes from `debootstrap --variant=minbase bookworm` (Debian's Python 3.11), trusting
this machine's CA bundle and pip configuration, and is rebuilt only when those change.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

STATE = Path(os.environ.get("WXP_IMAGE_TEST_DIR", "/var/cache/wxp-image-test"))
# Debian's client, the same release as its daemon (another client on PATH may speak a newer API).
DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
LABEL = "wxp-image-test"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_MIRROR = os.environ.get("WXP_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Bump when the recipe below changes, so that a cached base is rebuilt.
BASE_RECIPE = b"bookworm minbase python3 python3-venv python-is-python3 ca-certificates v1"


def progress(message: str) -> None:
    """A progress line on the terminal, through pytest's capture (the test takes minutes)."""
    print(f"[image-test {time.strftime('%H:%M:%S')}] {message}", file=sys.__stderr__, flush=True)


class Engine:
    def __init__(self, state: Path = STATE) -> None:
        self.state = state
        self.sock = state / "sock"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.sock}"}
        self._lock: IO[str] | None = None
        self._daemon: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        for tool in (DOCKER, DOCKERD, "/usr/sbin/debootstrap"):
            assert Path(tool).exists(), f"{tool} is missing: run scripts/ensure-image-tools.sh (make image-test does)"
        self.state.mkdir(parents=True, exist_ok=True)
        self._lock = (self.state / "lock").open("w")
        progress(f"waiting for {self.state}/lock (another image test may be running)")
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self._stop_leftover_daemon()
        progress("starting a private dockerd")
        log = (self.state / "dockerd.log").open("ab")
        self._daemon = subprocess.Popen(
            [
                DOCKERD, "--data-root", str(self.state / "root"), "--exec-root", str(self.state / "exec"),
                "--pidfile", str(self.state / "pid"), "--host", f"unix://{self.sock}",
                "--iptables=false", "--ip6tables=false", "--bridge=none",
            ],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while self.docker("version", check=False).returncode != 0:
            assert self._daemon.poll() is None, f"dockerd exited; see {self.state}/dockerd.log"
            assert time.monotonic() < deadline, f"dockerd did not answer in 60 s; see {self.state}/dockerd.log"
            time.sleep(0.5)
        # Containers a killed run left behind.
        leftovers = self.docker("ps", "-aq", "--filter", f"label={LABEL}").stdout.split()
        if leftovers:
            self.docker("rm", "-f", *leftovers, check=False)

    def _stop_leftover_daemon(self) -> None:
        """A daemon of a run that was killed before its clean-up (we hold the lock, so no run owns it)."""
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            pid = int((self.state / "pid").read_text())
            if "dockerd" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                os.kill(pid, signal.SIGTERM)
                for _ in range(60):
                    if not Path(f"/proc/{pid}").exists():
                        break
                    time.sleep(0.5)

    def stop(self) -> None:
        if self._daemon is not None and self._daemon.poll() is None:
            progress("stopping the private dockerd")
            self._daemon.terminate()
            try:
                self._daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._daemon.pid, signal.SIGKILL)
                self._daemon.wait()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def docker(
        self, *args: str, check: bool = True, timeout: float = 120, input: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [DOCKER, *args], env=self.env, capture_output=True, text=input is None, input=input, timeout=timeout
        )
        if input is not None:  # bytes in, text out
            result = subprocess.CompletedProcess(
                result.args,
                result.returncode,
                result.stdout.decode(errors="replace"),
                result.stderr.decode(errors="replace"),
            )
        if check:
            assert result.returncode == 0, f"docker {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    # --- the base image --------------------------------------------------------------------------------------

    def base_image(self) -> str:
        """A bookworm base with Debian's Python 3.11, this machine's CA bundle and pip index: built once."""
        pip_conf = _pip_conf().encode()
        digest = hashlib.sha256(BASE_RECIPE + CA_BUNDLE.read_bytes() + pip_conf).hexdigest()[:12]
        tag = f"wxp-base:bookworm-{digest}"
        if self.docker("image", "inspect", tag, check=False).returncode == 0:
            progress(f"base image {tag} is cached")
            return tag
        progress(f"building the base image {tag} with debootstrap (about a minute)")
        rootfs = self.state / "tmp" / f"rootfs-{os.getpid()}"
        shutil.rmtree(rootfs, ignore_errors=True)
        rootfs.parent.mkdir(parents=True, exist_ok=True)
        try:
            boot = subprocess.run(
                [
                    "debootstrap", "--variant=minbase",
                    "--include=python3,python3-venv,python-is-python3,ca-certificates",
                    "bookworm", str(rootfs), DEBIAN_MIRROR,
                ],
                capture_output=True, text=True, timeout=1200,
            )  # fmt: skip
            assert boot.returncode == 0, f"debootstrap failed:\n{boot.stdout[-3000:]}\n{boot.stderr[-3000:]}"
            # TLS to PyPI may be intercepted here: the machine's bundle (Debian's CAs plus any local one).
            shutil.copyfile(CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
            (rootfs / "etc/pip.conf").write_bytes(pip_conf)
            for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for item in (rootfs / cache).glob("*"):
                    if item.is_file():
                        item.unlink()
            tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True)
            self.docker(
                "import",
                "--change", f"ENV SSL_CERT_FILE={CA_BUNDLE}",
                "--change", f"ENV REQUESTS_CA_BUNDLE={CA_BUNDLE}",
                "--change", "ENV LANG=C.UTF-8",
                "--change", 'CMD ["python3"]',
                "-", tag,
                input=tar.stdout, timeout=300,
            )  # fmt: skip
        finally:
            shutil.rmtree(rootfs, ignore_errors=True)
        return tag


def _pip_conf() -> str:
    """pip's configuration for the base: the CA bundle, and the machine's package index if it names one
    (PIP_INDEX_URL or pip's own configuration). Local file indexes do not exist inside the image."""
    lines = ["[global]", f"cert = {CA_BUNDLE}"]
    found: dict[str, str] = {}
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    for line in listed.stdout.splitlines():
        key, _, value = line.partition("=")
        found[key.split(".", 1)[-1]] = value.strip().strip("'\"")
    for key in ("index-url", "extra-index-url", "trusted-host"):
        value = os.environ.get(f"PIP_{key.upper().replace('-', '_')}") or found.get(key, "")
        if key.endswith("url"):
            value = " ".join(url for url in value.split() if url.startswith(("http://", "https://")))
        if value:
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"
