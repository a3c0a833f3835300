"""A one-node SLURM cluster on 127.0.0.1 for the tests, from Debian's slurm-wlm and munge.

Everything lives in one scratch folder: ``slurm.conf`` (found by the clients through
``SLURM_CONF``, never written to ``/etc/slurm``, so that ``scontrol`` elsewhere on the
machine keeps failing at once instead of waiting for a controller), the munge key and
socket, state and spool folders, logs. The daemons run in the foreground as children of
the test (munged as user ``munge``, slurmctld and slurmd as root with ``SlurmUser=root``)
on free ports, and are stopped by their PIDs. No accounting (slurmdbd): job states come
from ``squeue``, which keeps finished jobs for ``MinJobAge`` seconds.

Set-up that works with SLURM 22.05 in a container without systemd or cgroups:
``ProctrackType=proctrack/linuxproc``, ``TaskPlugin=task/none``, no ``cgroup.conf``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol", "mungekey")


def missing_binaries() -> list[str]:
    return [name for name in DAEMONS if shutil.which(name) is None and not Path(f"/usr/sbin/{name}").exists()]


def _which(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SLURM_CONF = """\
ClusterName=neurofuse-ci
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName={node} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=main Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster:
    """Start with :meth:`start`, stop with :meth:`stop` (by PID). ``env`` is what clients need."""

    def __init__(self, root: Path, cpus: int = 2, memory_mb: int = 16000):
        self.root = root
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.node = "nf1"
        self.host = socket.gethostname().split(".")[0]
        self.processes: dict[str, subprocess.Popen] = {}
        self.conf = root / "slurm.conf"
        self.munge_socket = root / "munge" / "munge.socket"

    @property
    def env(self) -> dict[str, str]:
        # The slurm-jobstep plugin strips SLURM_* variables (SLURM_CONF too) before its nested
        # srun inside a job; a real cluster has /etc/slurm/slurm.conf for that. Ours must not
        # (see the module docstring), so srun is reached through a wrapper that sets SLURM_CONF.
        return {"SLURM_CONF": str(self.conf), "PATH": f"{self.root / 'bin'}{os.pathsep}{os.environ['PATH']}"}

    def start(self, timeout: float = 60.0) -> SlurmCluster:
        t0 = time.monotonic()
        for sub in ("state", "spool", "munge", "munge-key"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        munge_dir = self.root / "munge"  # socket, pid, log: munged wants it traversable by all
        for sub, mode in ((munge_dir, 0o755), (self.root / "munge-key", 0o700)):
            shutil.chown(sub, "munge", "munge")
            os.chmod(sub, mode)
        os.chmod(self.root, 0o755)
        key = self.root / "munge-key" / "munge.key"
        subprocess.run([_which("mungekey"), "--create", "--keyfile", str(key)], check=True, capture_output=True,
                       user="munge", group="munge", extra_groups=[])
        wrapper = self.root / "bin" / "srun"
        wrapper.parent.mkdir(exist_ok=True)
        wrapper.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec {_which("srun")} "$@"\n')
        wrapper.chmod(0o755)
        self.conf.write_text(SLURM_CONF.format(
            host=self.host, node=self.node, root=self.root, munge_socket=self.munge_socket, cpus=self.cpus,
            memory_mb=self.memory_mb, ctld_port=_free_port(), slurmd_port=_free_port()))
        self._spawn("munged", [
            _which("munged"), "--foreground", "--socket", str(self.munge_socket), "--key-file", str(key),
            "--pid-file", str(munge_dir / "munged.pid"), "--log-file", str(munge_dir / "munged.log"),
            "--seed-file", str(munge_dir / "munged.seed")], user="munge")
        self._wait(lambda: self.munge_socket.exists(), timeout, "munged did not create its socket")
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", [_which("slurmd"), "-D", "-N", self.node, "-f", str(self.conf)])
        self._wait(self._node_ready, timeout, "the SLURM node did not become idle")
        self.setup_seconds = time.monotonic() - t0
        return self

    def _spawn(self, name: str, cmd: list[str], user: str | None = None) -> None:
        """Start a daemon in the foreground; the Popen's PID is the daemon's own (no wrapper)."""
        ids = {"user": user, "group": user, "extra_groups": []} if user else {}
        with open(self.root / f"{name}.stdout", "wb") as log:
            self.processes[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                                    env=dict(os.environ, **self.env), **ids)

    def _node_ready(self) -> bool:
        result = subprocess.run([_which("sinfo"), "-h", "-N", "-o", "%T"], capture_output=True, text=True,
                                env=dict(os.environ, **self.env), timeout=20)
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"{name} exited with {proc.returncode}: {self.logs()}")
            if ready():
                return
            time.sleep(0.5)
        logs = self.logs()
        self.stop()
        raise RuntimeError(f"{what} within {timeout} s: {logs}")

    def logs(self) -> str:
        parts = []
        for path in sorted(self.root.glob("*.log")) + sorted(self.root.glob("*.stdout")) + [
                self.root / "munge" / "munged.log"]:
            if path.is_file():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM each daemon by PID (slurmd first), SIGKILL what does not exit in 15 s."""
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.processes.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            os.kill(proc.pid, 15)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, 9)
                proc.wait()
