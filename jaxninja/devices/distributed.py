"""Several processes as one data-parallel run: JAX's distributed runtime, bounded in time.

Every process runs the same command (``jaxninja train ...``) with the same data and seed;
:func:`initialize` connects it to the others before jax starts its backend, after which
``jax.devices()`` lists every process's devices and :func:`jaxninja.devices.parallel.make_mesh`
spans them. Where the processes come from:

- ``--coordinator HOST:PORT --num-processes N --process-id I`` (what ``jaxninja launch`` passes);
- ``JAX_COORDINATOR_ADDRESS`` (JAX reads it itself) with ``--num-processes`` / ``--process-id``;
- a cluster environment ``jax.distributed.initialize()`` detects (SLURM's ``srun``, Open MPI's
  ``mpirun``) with more than one task: count, id and coordinator come from it.

**Nothing hangs for minutes.** JAX's defaults wait 5 minutes for the processes to connect, 100 s
before a silent process is declared dead and 5 minutes for the others at exit; here they are
:data:`INIT_TIMEOUT_S`, :data:`HEARTBEAT_TIMEOUT_S` and :data:`SHUTDOWN_TIMEOUT_S`. A process
that dies makes the others' next collective fail at once (its sockets close) or, when its host
vanishes silently, the runtime ends them after the heartbeat timeout (``LOG(FATAL)``, status 134:
such a process cannot print a line of its own, so ``jaxninja launch`` prints it).

**Decisions are agreed.** Whatever can differ between processes (their flags, their data, a
failure while preparing, a signal that reached only some of them) is all-gathered at a fixed
point (:func:`agreed`, :func:`agree_stop`), so every process takes the same branch and none waits
in a collective for one that left. Only process 0 writes files; on ``--resume`` process 0 reads
the checkpoint and broadcasts its bytes (:func:`shared_files`), so the hosts need no shared
filesystem.

The coordinator never listens on every interface (JAX's default, meant for clusters): a
loopback coordinator, however spelled (``127.0.0.1``, ``localhost``, ``LOCALHOST``, ``[::1]``,
a name that resolves only to loopback), is 127.0.0.1 (``[::1]`` when given as IPv6) for every
process, listening there only; any other host is listened on exactly as given
(:func:`coordinator_addresses`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, TypeVar

from jaxninja.errors import ConfigError, DistributedError, JaxninjaError

INIT_TIMEOUT_S = 60
"""Seconds every process waits for all of them to connect (JAX: 300). Two processes start on a
loaded 2-core machine in under 15 s; a cluster's scheduler starts its tasks within seconds.
``$JAXNINJA_INIT_TIMEOUT_S`` overrides it."""

HEARTBEAT_TIMEOUT_S = 20
"""Seconds without a heartbeat before a process counts as dead and the others are ended (JAX:
100). Heartbeats come from a C++ thread, not Python, so compiling does not delay them.
``$JAXNINJA_HEARTBEAT_TIMEOUT_S`` overrides it."""

SHUTDOWN_TIMEOUT_S = 60
"""Seconds a finished process waits at exit for the others (JAX: 300): process 0 still writes
the summary and plot after the others are done. ``$JAXNINJA_SHUTDOWN_TIMEOUT_S`` overrides it."""

CLUSTER_COUNTS = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")  # tasks in a cluster job step

T = TypeVar("T")


class Spec(NamedTuple):
    """How this process joins the run; None fields are left to JAX (environment, cluster)."""

    coordinator: str | None
    num_processes: int | None
    process_id: int | None


# ----------------------------------------------------------------------------- joining


def spec_from(
    coordinator: str | None,
    num_processes: int | None,
    process_id: int | None,
    environ: Mapping[str, str] | None = None,
) -> Spec | None:
    """This process's :class:`Spec`, or None for a run in one process.

    Several processes when a flag is given, when ``JAX_COORDINATOR_ADDRESS`` is set, or in a
    cluster job step of more than one task (SLURM, Open MPI). The flags are checked here, before
    jax starts, so a wrong id or count is one line.
    """
    env = os.environ if environ is None else environ
    cluster = any(_int_or_zero(env.get(name)) > 1 for name in CLUSTER_COUNTS)
    given = (coordinator, num_processes, process_id) != (None, None, None)
    if not (given or env.get("JAX_COORDINATOR_ADDRESS") or cluster):
        return None
    if coordinator is not None:
        check_address(coordinator)
    if num_processes is not None and (type(num_processes) is not int or num_processes < 1):
        raise ConfigError(f"--num-processes must be at least 1, got {num_processes}")
    if process_id is not None:
        if type(process_id) is not int or process_id < 0:
            raise ConfigError(f"--process-id must be 0 or more, got {process_id}")
        if num_processes is not None and process_id >= num_processes:
            raise ConfigError(
                f"--process-id {process_id} is not below --num-processes {num_processes} "
                f"(ids run 0..{num_processes - 1})"
            )
    if not cluster and (num_processes is None or process_id is None):
        missing = "--num-processes" if num_processes is None else "--process-id"
        raise ConfigError(
            f"{missing} is needed with a coordinator (outside SLURM / Open MPI, every process "
            "is given --coordinator HOST:PORT --num-processes N --process-id I)"
        )
    return Spec(coordinator, num_processes, process_id)


def _int_or_zero(text: str | None) -> int:
    try:
        return int(text) if text else 0
    except ValueError:
        return 0


def check_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` split and checked (a port 1..65535)."""
    host, sep, port = address.rpartition(":")
    digits = port.isascii() and port.isdigit()  # "²".isdigit() is True, but int() refuses it
    if not sep or not host or not digits or not 0 < int(port) < 65536:
        raise ConfigError(f"--coordinator {address!r}: expected HOST:PORT, e.g. 127.0.0.1:12345")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (any spelling: ``LOCALHOST``, ``127.0.0.2``, ``[::1]``, a name that
    resolves only to loopback) is this machine's loopback; compared case-insensitively and
    resolved, never by spelling alone."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        found = {info[4][0] for info in socket.getaddrinfo(name, None)}
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in found)


def coordinator_addresses(address: str) -> tuple[str, str]:
    """(the address every process connects to, the one process 0 listens on) for
    ``--coordinator address``. Loopback, however spelled, is 127.0.0.1 (``[::1]`` when given
    as IPv6) for both, so a name that resolves to ::1 for one process and 127.0.0.1 for another
    cannot split them; any other host is listened on exactly as given, never on every
    interface."""
    host, port = check_address(address)
    if is_loopback(host):
        ipv6 = ":" in host.strip("[]")
        loopback = "[::1]" if ipv6 else "127.0.0.1"
        return f"{loopback}:{port}", f"{loopback}:{port}"
    return address, address


def initialize(spec: Spec) -> None:
    """Join the run described by ``spec`` (before any other jax call) with this module's
    timeouts; every failure is one :class:`DistributedError` line naming the address."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before jaxlib loads: our lines say it
    import jax

    address = spec.coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
    connect = bind = None
    init_s = timeout("JAXNINJA_INIT_TIMEOUT_S", INIT_TIMEOUT_S)
    if address is not None:
        connect, bind = coordinator_addresses(address)
        host, port = check_address(connect)
        counted = spec.num_processes is not None and spec.process_id is not None
        if spec.process_id:  # not process 0, which starts the coordinator
            hello = spec.process_id if counted else None
            wait_for_coordinator(host.strip("[]"), port, init_s, hello)
        elif counted:  # process 0: every other process says hello before JAX's coordinator
            rendezvous(bind, spec.num_processes, init_s, address)
        elif is_loopback(host):
            check_port_free(host.strip("[]"), port, address)
    where = address or "the cluster's coordinator"
    # JAX's preemption service installs its own SIGTERM handler in C++, which would replace
    # the command's (SIGTERM would then be ignored); the agreed stop does that job here.
    jax.config.update("jax_enable_preemption_service", False)
    try:
        jax.distributed.initialize(
            coordinator_address=connect if spec.coordinator else None,
            num_processes=spec.num_processes,
            process_id=spec.process_id,
            initialization_timeout=init_s,
            heartbeat_timeout_seconds=timeout("JAXNINJA_HEARTBEAT_TIMEOUT_S", HEARTBEAT_TIMEOUT_S),
            shutdown_timeout_seconds=timeout("JAXNINJA_SHUTDOWN_TIMEOUT_S", SHUTDOWN_TIMEOUT_S),
            coordinator_bind_address=bind,
        )
    except Exception as err:  # the runtime raises RuntimeError, ValueError, JaxRuntimeError
        raise DistributedError(_init_failure(err, where, spec, init_s)) from None
    count = jax.process_count()
    if spec.num_processes is not None and count != spec.num_processes:
        # said at the first agreement, with the others, so none is left waiting for this one
        _problems.append(
            f"--num-processes {spec.num_processes} but the coordinator {where} runs "
            f"{count} processes; start every process with the same --num-processes"
        )


_problems: list[str] = []


def check_joined() -> None:
    """Raise what :func:`initialize` found wrong but could not say alone (a process count that
    differs from the coordinator's); called inside the first :func:`agreed` phase."""
    if _problems:
        raise DistributedError(_problems[0])


def check_port_free(host: str, port: int, address: str) -> None:
    """Refuse a coordinator port that is already in use, before jaxlib tries to listen on it:
    jaxlib then either raises or, in some states, crashes the process with SIGSEGV, which
    cannot print a line. (A port taken in the moment between this probe and jaxlib's own bind
    still reaches jaxlib.)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR: a port a finished run left in TIME_WAIT is free; a listening one is not
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            raise DistributedError(
                f"cannot listen on {address}: the port is in use (pick another --coordinator port)"
            ) from None


HELLO = b"jaxninja-hello "  # + a process id and a newline: a process saying it is there
READY = b"ok\n"
HELLO_WAIT_S = 5  # for a connected process to say hello, or for process 0 to answer


def wait_for_coordinator(
    host: str, port: int, seconds: float, process_id: int | None = None
) -> None:
    """Until the coordinator accepts connections, at most ``seconds``: JAX's own wait ends in a
    fatal abort (a page of log, status 134) where this gives one line. With ``process_id``,
    also say hello to process 0's :func:`rendezvous` and wait for its answer."""
    end = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((host, port), timeout=2) as conn:
                if process_id is None:
                    return
                conn.settimeout(HELLO_WAIT_S)
                conn.sendall(HELLO + f"{process_id}\n".encode("ascii"))
                if conn.recv(len(READY)) == READY:
                    return
        except OSError:
            pass
        if time.monotonic() > end:
            raise DistributedError(
                f"cannot reach the coordinator {host}:{port} within {seconds:g} s (is process "
                "0 running there, on that port?)"
            ) from None
        time.sleep(0.25)


def rendezvous(bind: str, n: int, seconds: float, where: str) -> None:
    """Process 0, before it starts JAX's coordinator: listen on its address (plain TCP, the
    same interface) until every other process has said hello (:func:`wait_for_coordinator`),
    at most ``seconds``. JAX's own wait for a missing process ends in a C++ abort (SIGABRT and
    a page of stack, after the timeout); this ends in one line naming the missing processes.
    A port in use is refused here too."""
    host, port = check_address(bind)
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind((host, port))
            server.listen()
        except OSError:
            raise DistributedError(
                f"cannot listen on {where}: the port is in use (pick another --coordinator port)"
            ) from None
        seen: set[int] = set()
        end = time.monotonic() + seconds
        while len(seen) < n - 1:
            left = end - time.monotonic()
            if left <= 0:
                missing = sorted(set(range(1, n)) - seen)
                ids = ", ".join(map(str, missing))
                raise DistributedError(
                    f"process{'es' if len(missing) > 1 else ''} {ids} of {n} did not reach the "
                    f"coordinator {where} within {seconds:g} s (start every process with "
                    f"--coordinator {where} --num-processes {n}); nothing was trained"
                )
            server.settimeout(min(left, 1.0))
            try:
                conn, _ = server.accept()
            except OSError:  # the 1 s poll, or a connection reset before it was accepted
                continue
            with conn:
                process_id = _hello(conn, n)
                if process_id is not None:
                    seen.add(process_id)


def _hello(conn: socket.socket, n: int) -> int | None:
    """The id a connected process says hello with (answered), or None (anything else)."""
    try:
        conn.settimeout(HELLO_WAIT_S)
        data = conn.recv(len(HELLO) + 12)
        text = data[len(HELLO) :].strip()
        if not data.startswith(HELLO) or not (text.isascii() and text.isdigit()):
            return None
        if not 1 <= int(text) < n:
            return None
        conn.sendall(READY)
        return int(text)
    except OSError:
        return None


def timeout(name: str, default: int) -> int:
    """Seconds from the environment variable ``name`` (a whole number 1..3600), else
    ``default``."""
    text = os.environ.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 3600:
        raise ConfigError(f"${name} must be whole seconds 1..3600, got {text!r}")
    return int(text)


def _init_failure(err: Exception, where: str, spec: Spec, init_s: int) -> str:
    text = str(err)
    first = text.splitlines()[0] if text else type(err).__name__
    if "Failed to start RPC server" in text or "Address already in use" in text:
        return f"cannot listen on {where}: the port is in use (pick another --coordinator port)"
    if "DEADLINE_EXCEEDED" in text or "timed out" in text.lower():
        n = spec.num_processes or "all"
        return (
            f"not all {n} processes reached the coordinator {where} within {init_s} s "
            "(is process 0 running there, and was every process given the same "
            "--num-processes?)"
        )
    return f"joining the run at {where} failed: {first}"


def is_multiprocess() -> bool:
    """Whether this process is one of several (``jax.distributed`` initialised)."""
    import jax

    return jax.process_count() > 1


def process_index() -> int:
    import jax

    return jax.process_index()


def is_writer() -> bool:
    """Whether this process writes the run's files: process 0 (or the only process)."""
    return process_index() == 0


# ----------------------------------------------------------------------------- agreeing


def _allgather(row: bytes) -> list[bytes]:
    """Every process's ``row`` (the same length everywhere), in process order."""
    import numpy as np
    from jax.experimental import multihost_utils

    local = np.frombuffer(row, np.uint8)
    with lost_contact():
        rows = np.asarray(multihost_utils.process_allgather(local))
    return [bytes(r) for r in rows.reshape(-1, len(row))]


@contextmanager
def lost_contact(kept: Callable[[], str] | None = None) -> Iterator[None]:
    """A collective that fails (another process left: its sockets closed) becomes one
    :class:`DistributedError` line; ``kept()`` ends it (e.g. which checkpoint is kept)."""
    try:
        yield
    except JaxninjaError:
        raise
    except Exception as err:  # the runtime raises ValueError / JaxRuntimeError with its text
        text = str(err).strip()
        reason = text.splitlines()[0][:300] if text else type(err).__name__
        end = f"; {kept()}" if kept is not None else ""
        raise DistributedError(f"lost contact with another process ({reason}){end}") from None


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def agreed(what: str, fn: Callable[[], T], fingerprint: Callable[[T], str] | None = None) -> T:
    """``fn()`` in every process, then one all-gather: either every process succeeded (and, with
    ``fingerprint``, computed the same fingerprint of its result) and each gets its result, or
    every process raises (its own error, or one naming the process that failed or differs).

    ``what`` names the phase in the messages. One process alone: just ``fn()``.
    """
    if not is_multiprocess():
        return fn()
    result: T | None = None
    error: BaseException | None = None
    try:
        result = fn()
    except (JaxninjaError, OSError) as err:
        error = err
    mark = b"\x01" + (_digest(fingerprint(result)) if error is None and fingerprint else bytes(32))
    rows = _allgather(b"\x00" + bytes(32) if error is not None else mark)
    failed = [i for i, row in enumerate(rows) if row[0] == 0]
    if error is not None and (failed[0] == process_index() or failed[0] != 0):
        raise error  # its own failure (process 0's, when it failed too, is the one to read)
    if failed:
        raise DistributedError(
            f"process {failed[0]} failed while {what} (see its message); every process stops"
        )
    differ = [i for i, row in enumerate(rows) if row != rows[0]]
    if differ:
        raise ConfigError(
            f"process {differ[0]} was started with other settings or data than process 0 "
            f"({what}); start every process with the same flags and the same words"
        )
    return result  # type: ignore[return-value]


def agree_stop(code: int) -> int:
    """The largest stop ``code`` over all processes (0: go on; a signal number: stop).

    Called by every process after every chunk, so a signal that reached one process stops all
    of them at the same step; the cost is one tiny all-gather per chunk (1,000 steps)."""
    if not is_multiprocess():
        return code
    rows = _allgather(int(code).to_bytes(1, "little"))
    return max(row[0] for row in rows)


# ----------------------------------------------------------------------------- files


def shared_files(sources: tuple[Path, ...], names: tuple[str, ...], max_bytes: int) -> Path:
    """Process 0's files ``sources``, present in every process: process 0 reads them and
    broadcasts their bytes; each other process writes them, as ``names``, into a private
    temporary folder and gets its path, to be read by the same hostile-input-safe loaders (the
    ``sources`` of the other processes are not read). Process 0 gets its first source's folder.
    A missing file is sent as absent; one over ``max_bytes`` is refused by all."""
    if not is_multiprocess():
        return sources[0].parent
    import numpy as np
    from jax.experimental import multihost_utils

    sizes = np.full(len(names), -1, np.int32)
    blobs: list[bytes] = []
    error: BaseException | None = None
    if is_writer():
        try:
            for i, path in enumerate(sources):
                if path.is_file():
                    if path.stat().st_size > max_bytes:
                        raise DistributedError(
                            f"{path}: over {max_bytes:,} bytes, too large to send to the other "
                            "processes"
                        )
                    blobs.append(path.read_bytes())
                    sizes[i] = len(blobs[-1])
                else:
                    blobs.append(b"")
        except (JaxninjaError, OSError) as err:
            error, sizes[:] = err, -2
    with lost_contact():
        sizes = np.asarray(multihost_utils.broadcast_one_to_all(sizes))
    if error is not None:
        raise error
    if (sizes == -2).any():
        raise DistributedError("process 0 could not read the checkpoint (see its message)")
    payload = np.frombuffer(b"".join(blobs), np.uint8) if is_writer() else None
    total = int(np.maximum(sizes, 0).sum())
    if payload is None:
        payload = np.zeros(total, np.uint8)
    if total:
        with lost_contact():
            payload = np.asarray(multihost_utils.broadcast_one_to_all(payload))
    if is_writer():
        return sources[0].parent
    local = Path(tempfile.mkdtemp(prefix="jaxninja-resume-"))
    offset = 0
    for name, size in zip(names, sizes.tolist(), strict=True):
        if size >= 0:
            (local / name).write_bytes(payload[offset : offset + size].tobytes())
            offset += size
    return local
