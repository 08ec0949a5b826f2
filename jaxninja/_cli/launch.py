"""``jaxninja launch``: one run as several processes on this machine, over loopback.

jaxninja launch --processes 2 -- train --steps 2000 --out runs/dp2
jaxninja launch --processes 2 --devices-per-process 2 -- train --batch-size 64 --out runs/dp4
jaxninja launch --processes 2 -- check --against jax

Each process is ``python -m jaxninja COMMAND ... --coordinator 127.0.0.1:PORT --num-processes N
--process-id I`` (a free port unless ``--port``), in a process group of its own, so a terminal's
Ctrl-C reaches the launcher only and the launcher forwards it once to every process: they agree
to stop at the same chunk boundary, process 0 saves, all exit 130 (SIGTERM: 143). A second
signal is forwarded too (every process leaves at once). Output comes back line by line prefixed
``[pI]``. When one process fails, the others normally leave within a second (their next
collective fails); any still running after :data:`GRACE_S` seconds are killed. The launcher
then prints one line naming the process that failed first and how, since a process ended by
JAX's runtime (``LOG(FATAL)``, SIGABRT) cannot print it, and exits with that process's status.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import IO

from jaxninja.errors import ConfigError

GRACE_S = 10.0  # after a failure, seconds the others get to leave on their own before SIGKILL
POLL_S = 0.05
COMMANDS = ("train", "check")
OWN_FLAGS = ("--coordinator", "--num-processes", "--process-id")  # the launcher sets them
MULTI_RUN_FLAGS = ("--seeds", "--sweep")  # several runs x several processes: not designed yet
DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--processes", type=int, default=2, metavar="N", help="processes to start (default 2)"
    )
    p.add_argument(
        "--devices-per-process",
        type=int,
        default=1,
        metavar="K",
        help="CPU devices each process simulates (XLA_FLAGS=" + DEVICE_COUNT_FLAG + "=K); "
        "the batch is split over N x K devices (default 1)",
    )
    p.add_argument(
        "--port", type=int, metavar="P", help="coordinator port on 127.0.0.1 (default: a free one)"
    )
    p.add_argument(
        "child",
        nargs=argparse.REMAINDER,
        help="-- then the jaxninja command every process runs: train ... or check ...",
    )


def child_command(args: argparse.Namespace) -> list[str]:
    """The command line after ``--``, checked: a command that can run over processes, without
    the flags the launcher sets, and not a multi-run (one line each)."""
    command = list(args.child)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command or command[0] not in COMMANDS:
        got = f" (got {command[0]!r})" if command else ""
        raise ConfigError(f"launch: expected `-- train ...` or `-- check ...`{got}")
    for arg in command[1:]:
        name = arg.split("=", 1)[0]
        if name in OWN_FLAGS:
            raise ConfigError(f"launch: {name} is set by the launcher for each process; drop it")
        if name in MULTI_RUN_FLAGS:
            raise ConfigError(
                f"launch: {name} is refused: several runs over several processes are not "
                "designed yet; launch each run on its own"
            )
    if args.processes < 1 or args.processes > 64:
        raise ConfigError(f"launch: --processes must be 1..64, got {args.processes}")
    if args.devices_per_process < 1:
        k = args.devices_per_process
        raise ConfigError(f"launch: --devices-per-process must be 1 or more, got {k}")
    return command


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(devices_per_process: int) -> dict[str, str]:
    """The environment of each process: unbuffered output, K simulated CPU devices."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_COUNT_FLAG)]
    if devices_per_process > 1:
        flags.append(f"{DEVICE_COUNT_FLAG}={devices_per_process}")
    env["XLA_FLAGS"] = " ".join(flags)
    return env


def _forward(pipe: IO[bytes], out: IO[str], prefix: str) -> None:
    """Copy ``pipe`` to ``out`` line by line with ``prefix``; the runtime's C++ stack frames
    (a fatal log's dozens of ``@ 0x...`` lines) are dropped, its message line is kept."""
    for raw in iter(pipe.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if line.lstrip().startswith("@ ") or line.startswith("*** Check failure stack trace"):
            continue
        try:
            out.write(f"{prefix}{line}\n")
            out.flush()
        except (OSError, ValueError):
            pass
    pipe.close()


def describe(status: int) -> str:
    """A process's end in words (negative status: killed by that signal)."""
    if status >= 0:
        return f"exited with status {status}"
    name = signal.Signals(-status).name
    if -status == signal.SIGABRT:
        return f"was ended by JAX's distributed runtime ({name}: another process died or hung)"
    return f"was killed by {name}"


def shell_status(status: int) -> int:
    return status if status >= 0 else 128 - status


class Group:
    """The started processes: forwarding, signals, and who ended first."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.threads: list[threading.Thread] = []
        self.signals: list[int] = []
        self.ended: list[tuple[float, int, int]] = []  # (time, process id, status) in order

    def start(self, cmd: list[str], n: int, port: int, env: dict[str, str]) -> None:
        """Start the ``n`` processes (none more once a signal came: those started get it)."""
        address = f"127.0.0.1:{port}"
        for i in range(n):
            if self.signals:
                break
            argv = [sys.executable, "-m", "jaxninja", *cmd, "--coordinator", address]
            argv += ["--num-processes", str(n), "--process-id", str(i)]
            proc = subprocess.Popen(
                argv,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C reaches only the launcher
            )
            self.procs.append(proc)
            for pipe, out in ((proc.stdout, sys.stdout), (proc.stderr, sys.stderr)):
                t = threading.Thread(target=_forward, args=(pipe, out, f"[p{i}] "), daemon=True)
                t.start()
                self.threads.append(t)

    def forward_signal(self, signum: int, frame: object) -> None:
        """The launcher's handler: pass the signal on to every process still running."""
        self.signals.append(signum)
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    proc.send_signal(signum)
                except OSError:
                    pass

    def wait(self) -> None:
        """Until every process has ended; after the first failure the others get
        :data:`GRACE_S` seconds, then SIGKILL."""
        failed_at = None
        while True:
            for i, proc in enumerate(self.procs):
                status = proc.poll()
                if status is not None and all(i != e[1] for e in self.ended):
                    self.ended.append((time.monotonic(), i, status))
                    if status != 0 and failed_at is None and not self.signals:
                        failed_at = time.monotonic()
            if len(self.ended) == len(self.procs):
                break
            if failed_at is not None and time.monotonic() - failed_at > GRACE_S:
                for proc in self.procs:
                    if proc.poll() is None:
                        proc.kill()
                failed_at = float("inf")  # killed once; keep collecting their statuses
            time.sleep(POLL_S)
        for t in self.threads:
            t.join(timeout=5)

    def verdict(self) -> tuple[int, str | None]:
        """The launcher's status and its one line (None when every process finished)."""
        statuses = [s for _, _, s in sorted(self.ended, key=lambda e: e[1])]
        n = len(statuses)
        if all(s == 0 for s in statuses):
            return 0, None
        if self.signals and all(s in (130, 143) for s in statuses):
            name = signal.Signals(self.signals[0]).name
            return statuses[0], f"{name}: all {n} processes stopped at the same step"
        first = next(e for e in self.ended if e[2] != 0)
        _, i, status = first
        others = [f"process {j} {describe(s)}" for _, j, s in self.ended if j != i]
        line = f"process {i} {describe(status)} first"
        if others:
            line += "; then " + ", ".join(others)
        return shell_status(status), line


def run(args: argparse.Namespace) -> int:
    """Start the processes, forward their output and signals, wait, say what happened."""
    cmd = child_command(args)
    port = args.port if args.port is not None else free_port()
    if not 0 < port < 65536:
        raise ConfigError(f"launch: --port must be 1..65535, got {port}")
    group = Group()
    previous = {s: signal.signal(s, group.forward_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        group.start(cmd, args.processes, port, child_env(args.devices_per_process))
        group.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    status, line = group.verdict()
    if line is not None:
        sys.stderr.write(f"jaxninja launch: {line}\n")
    return status
