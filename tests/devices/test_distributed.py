"""Several processes (issue 16): real processes on 127.0.0.1 talking through JAX's runtime.

Every test that starts jax in a child is ``slow`` (each child pays jax's start and a compile);
the default run keeps the refusals that end before jax starts, the flag and environment logic,
and one busy port (a single child that fails at once). Every wait is bounded
(:data:`TIMEOUT_S`), every port comes from the kernel (bind to port 0), no address but
127.0.0.1 is used.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from jaxninja import numerics
from jaxninja.devices import distributed
from jaxninja.errors import ConfigError, DistributedError
from tests.helpers import ROOT

TIMEOUT_S = 240  # one child run of 500-4,000 steps takes 15-60 s on 2 loaded cores
STEPS = ["--n-hidden", "64", "--dtype", "float64", "--samples", "2"]
RTOL = 1e-9  # the bound: float64, the same maths, only the order of the sums differs
DIED_WITHIN_S = 60  # the bound for the others to leave after one process is killed


# ----------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(devices: int = 1, **extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # `import jax` in pytest set it; a shell has none
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    if devices > 1:
        flags.append(f"--xla_force_host_platform_device_count={devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    return env | extra


def jaxninja(*args: str, env: dict | None = None, timeout: float = TIMEOUT_S):
    return subprocess.run(
        [sys.executable, "-m", "jaxninja", *args],
        capture_output=True,
        text=True,
        env=env or child_env(),
        timeout=timeout,
        cwd=ROOT,
    )


def start(args: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "jaxninja", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or child_env(),
        cwd=ROOT,
    )


def process_flags(port: int, n: int, i: int) -> list[str]:
    return ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n), "--process-id", str(i)]


def finish(procs: list[subprocess.Popen], timeout: float = TIMEOUT_S) -> list[tuple[int, str]]:
    """(status, stderr) of each process; any still running after ``timeout`` is killed. The
    stdout each printed is left in ``p.output``."""
    out = []
    for p in procs:
        try:
            p.output, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"a process did not end within {timeout} s")
        out.append((p.returncode, err))
    return out


def error_lines(stderr: str) -> list[str]:
    """stderr without gloo's connection notice (a line JAX's CPU collectives always print)."""
    return [line for line in stderr.splitlines() if line and not line.startswith("[Gloo]")]


def run_arrays(folder: Path) -> tuple[np.ndarray, list[np.ndarray], int]:
    from jaxninja.io.checkpoint import load_checkpoint

    ckpt = load_checkpoint(folder)
    return np.load(folder / "losses.npy"), [np.asarray(p) for p in ckpt.params], ckpt.step


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def wait_for(predicate, timeout: float = TIMEOUT_S, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


# ----------------------------------------------------------------------------- cheap checks


def test_spec_from_flags_and_environment():
    assert distributed.spec_from(None, None, None, {}) is None  # one process
    spec = distributed.spec_from("127.0.0.1:1234", 2, 1, {})
    assert spec == distributed.Spec("127.0.0.1:1234", 2, 1)
    assert distributed.spec_from(None, 2, 0, {"JAX_COORDINATOR_ADDRESS": "h:1"}).process_id == 0
    slurm = {"SLURM_NTASKS": "4", "SLURM_PROCID": "3"}
    assert distributed.spec_from(None, None, None, slurm) == distributed.Spec(None, None, None)
    assert distributed.spec_from(None, None, None, {"SLURM_NTASKS": "1"}) is None
    for bad in (("h:1", 2, 2), ("h:1", 2, -1), ("h:1", 0, 0), ("nohost", 2, 0), ("h:99999", 2, 0)):
        with pytest.raises(ConfigError):
            distributed.spec_from(*bad, {})
    with pytest.raises(ConfigError, match="--num-processes is needed"):
        distributed.spec_from("127.0.0.1:1", None, 0, {})


@pytest.mark.parametrize(
    "args, message",
    [
        (["launch", "--", "train", "--seeds", "3"], "--seeds is refused"),
        (["launch", "--", "train", "--sweep=lr=0.1,0.2"], "--sweep is refused"),
        (["launch", "--", "train", "--process-id", "1"], "--process-id is set by the launcher"),
        (["launch", "--", "sample"], "expected `-- train ...` or `-- check ...`"),
        (["launch", "--processes", "0", "--", "train"], "--processes must be 1..64"),
        (["train", *process_flags(1234, 2, 2)], "--process-id 2 is not below --num-processes 2"),
        (
            ["train", "--coordinator", "127.0.0.1:²", "--num-processes", "2", "--process-id", "0"],
            "--coordinator '127.0.0.1:²': expected HOST:PORT",
        ),
    ],
)
def test_refused_in_one_line_before_jax(args, message):
    r = jaxninja(*args, timeout=60)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("text", ["²", "1²", "٣"])  # str.isdigit's digits; ASCII ones only
def test_a_non_ascii_digit_is_refused_in_one_line(monkeypatch, text):
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        distributed.check_address(f"127.0.0.1:{text}")
    monkeypatch.setenv("JAXNINJA_INIT_TIMEOUT_S", text)
    with pytest.raises(ConfigError, match=r"\$JAXNINJA_INIT_TIMEOUT_S must be whole seconds"):
        distributed.timeout("JAXNINJA_INIT_TIMEOUT_S", 60)


def test_busy_port_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        t0 = time.monotonic()
        r = jaxninja("train", "--steps", "10", *process_flags(port, 2, 0), timeout=120)
    assert r.returncode == 1
    assert error_lines(r.stderr) == [
        f"jaxninja: error: cannot listen on 127.0.0.1:{port}: the port is in use (pick another "
        "--coordinator port)"
    ]
    assert time.monotonic() - t0 < 60  # refused at once, not after the initialisation timeout


@pytest.mark.parametrize(
    "given, connect",
    [
        ("127.0.0.1:{p}", "127.0.0.1:{p}"),
        ("localhost:{p}", "127.0.0.1:{p}"),
        ("LOCALHOST:{p}", "127.0.0.1:{p}"),
        ("LocalHost:{p}", "127.0.0.1:{p}"),
        ("127.0.0.2:{p}", "127.0.0.1:{p}"),
        ("[::1]:{p}", "[::1]:{p}"),
        ("10.9.8.7:{p}", "10.9.8.7:{p}"),  # not loopback: listened on as given (never started)
    ],
)
def test_the_coordinator_listens_only_where_it_is_told(given, connect):
    """Every loopback spelling is one address to connect to and to listen on; any other host is
    listened on exactly as given, never on every interface (no address is contacted here)."""
    got = distributed.coordinator_addresses(given.format(p=4242))
    assert got == (connect.format(p=4242), connect.format(p=4242))


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as the kernel's tables write it: 32-bit words in host (little-endian) order;
    an IPv4-mapped IPv6 address (a dual-stack socket's) as the IPv4 address it is."""
    raw = b"".join(
        bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, len(hex_address), 8)
    )
    address = ipaddress.ip_address(raw)
    return getattr(address, "ipv4_mapped", None) or address


def _listening(port: int) -> set:
    """The local addresses of the sockets listening on ``port`` (the kernel's own tables)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    found.add(_address(address))
    return found


def test_localhost_in_capitals_listens_on_loopback_only():
    """Process 0 given LOCALHOST:P listens on 127.0.0.1 only (it listened on every interface):
    asserted on the kernel's own table of listening sockets while it waits for process 1."""
    port = free_port()
    env = child_env(JAXNINJA_INIT_TIMEOUT_S="30")
    flags = ["--coordinator", f"LOCALHOST:{port}", "--num-processes", "2", "--process-id", "0"]
    p = start(["train", "--steps", "10", *flags], env=env)
    try:
        wait_for(lambda: _listening(port) or p.poll() is not None, 60, "the coordinator")
        assert p.poll() is None, p.communicate()[1]
        assert _listening(port) == {ipaddress.ip_address("127.0.0.1")}  # and nothing else
    finally:
        p.kill()
        p.communicate()


# ----------------------------------------------------------------------------- the same maths


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    """The reference: 500 float64 steps in one process on one device."""
    out = tmp_path_factory.mktemp("one") / "run"
    r = jaxninja("train", "--steps", "500", *STEPS, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 2])
def test_two_processes_train_as_one(one_process, tmp_path, devices):
    """2 processes x 1 device and 2 x 2 simulated devices: the one-process run within 1e-9."""
    out = tmp_path / "run"
    args = ["launch", "--processes", "2", "--devices-per-process", str(devices), "--", "train"]
    r = jaxninja(*args, "--steps", "500", *STEPS, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert f"({2 * devices} devices of 2 processes)" in r.stdout
    assert all(line.startswith(("[p0] ", "[p1] ")) for line in r.stdout.splitlines())
    assert not any(line.startswith("[p1] training") for line in r.stdout.splitlines())
    losses, params, step = run_arrays(out)
    ref_losses, ref_params, _ = run_arrays(one_process)
    assert step == 500 and len(losses) == 500
    assert relative(losses, ref_losses) <= RTOL
    for p, q in zip(params, ref_params, strict=True):
        assert p.dtype == np.float64 and relative(p, q) <= RTOL
    assert (out / "summary.json").exists() and (out / "loss.png").exists()
    curve = np.load(out / "val_losses.npy")  # the validation curve, as evaluate computes it
    summary = json.loads((out / "summary.json").read_text())
    assert curve[:, 0].tolist() == [500] and curve[-1, 1] == summary["losses"]["val"]


# ----------------------------------------------------------------------------- gradients, shards


def _worker(process_id: int, n: int, port: int) -> None:
    """One process of the gradient check: sharded manual gradients vs jax.grad of the same
    sharded loss, and what the compiled step holds; prints one JSON line."""
    distributed.initialize(distributed.Spec(f"127.0.0.1:{port}", n, process_id))
    import jax

    from jaxninja.devices import parallel
    from jaxninja.lecture.model import Params

    jax.config.update("jax_enable_x64", True)
    mesh = parallel.make_mesh(jax.device_count())
    rng = np.random.default_rng(0)
    shapes = [(27, 10), (30, 64), (64,), (64, 27), (27,), (1, 64), (1, 64)]
    params = Params(*(rng.normal(0, 0.5, s) for s in shapes))
    xb = rng.integers(0, 27, (32, 3), dtype=np.int32)
    yb = rng.integers(0, 27, 32, dtype=np.int32)
    rows = parallel.sharded_rows(mesh, params, xb, yb)
    hlo = parallel.sharded_hlo(mesh, params, xb, yb)
    local = 32 // mesh.size
    result = {
        "devices": mesh.size,
        "local_devices": len(jax.local_devices()),
        "rows": [[r.name, r.against, r.eps_scale, r.bound] for r in rows],
        "local_hidden": f"f64[{local},64]" in hlo,
        "global_hidden": "f64[32,64]" in hlo,
        "all_reduce": parallel.count_collectives(hlo)["all-reduce"],
    }
    print("RESULT " + json.dumps(result), flush=True)


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 2])
def test_gradients_and_shards_over_processes(devices):
    """Manual gradients within numerics.JAX_JIT of jax.grad of the sharded loss (and within
    numerics.SHARDED of one device); each process's program holds only its rows of the hidden
    layer, never the whole batch's."""
    port = free_port()
    env = child_env(devices)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.devices.test_distributed", str(i), "2", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for i in range(2)
    ]
    results = []
    for p, (status, err) in zip(procs, finish(procs), strict=True):
        assert status == 0, err
        line = next(x for x in p.output.splitlines() if x.startswith("RESULT "))
        results.append(json.loads(line[len("RESULT ") :]))
    for res in results:
        assert res["devices"] == 2 * devices and res["local_devices"] == devices
        assert res["local_hidden"] and not res["global_hidden"]
        assert res["all_reduce"] >= 1
        bounds = {f"{2 * devices}dev vs jax": numerics.JAX_JIT}
        bounds[f"{2 * devices}dev vs 1dev"] = numerics.SHARDED
        assert {r[1] for r in res["rows"]} == set(bounds)
        for name, against, err, bound in res["rows"]:
            assert bound == bounds[against] and err <= bound, (name, against, err)
    assert results[0]["rows"] == results[1]["rows"]  # replicated results: the same everywhere


# ----------------------------------------------------------------------------- stop, resume


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


@pytest.mark.slow
def test_interrupt_and_resume_through_the_launcher(tmp_path):
    """Ctrl-C to the launcher: every process stops at the same chunk, one checkpoint, 130;
    resumed with 2 processes it is bit-identical to an uninterrupted 2-process run, resumed with
    1 process it continues correctly (within the float64 bound)."""
    launch = ["launch", "--processes", "2", "--", "train", "--steps", "3000", *STEPS]
    whole = tmp_path / "whole"
    r = jaxninja(*launch, "--out", str(whole))
    assert r.returncode == 0, r.stderr

    cut = tmp_path / "cut"
    p = subprocess.Popen(
        [sys.executable, "-m", "jaxninja", *launch, "--out", str(cut)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=ROOT,
    )
    for line in p.stdout:
        if "training on" in line:
            break
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=TIMEOUT_S)
    assert p.returncode == 130, err
    assert (
        err.splitlines()[-1] == "jaxninja launch: SIGINT: all 2 processes stopped at the same step"
    )
    steps = {
        line.split(" at step ")[1].split(":")[0] for line in err.splitlines() if "SIGINT at" in line
    }
    assert len(steps) == 1  # both processes name the same step
    _, _, step = run_arrays(cut)
    assert 0 < step < 3000 and step % 1000 == 0 and f"{step:,}" in steps
    other = tmp_path / "other"
    other.mkdir()
    for name in ("checkpoint.npz", "losses.npy"):
        (other / name).write_bytes((cut / name).read_bytes())

    r = jaxninja("launch", "--processes", "2", "--", "train", "--resume", str(cut))
    assert r.returncode == 0, r.stderr
    losses, params, step = run_arrays(cut)
    ref_losses, ref_params, _ = run_arrays(whole)
    assert step == 3000 and np.array_equal(losses, ref_losses)
    assert all(np.array_equal(a, b) for a, b in zip(params, ref_params, strict=True))

    r = jaxninja("train", "--resume", str(other))  # another count: one process
    assert r.returncode == 0, r.stderr
    losses, params, step = run_arrays(other)
    assert step == 3000 and relative(losses, ref_losses) <= RTOL
    assert all(relative(a, b) <= RTOL for a, b in zip(params, ref_params, strict=True))


@pytest.mark.slow
def test_sigterm_to_every_process_and_two_folders(tmp_path):
    """SIGTERM to each process at once (no launcher): all stop at the same step, 143, process 0
    alone writes; then a resume with a folder per process (process 1's holds nothing: process 0
    broadcasts the checkpoint) ends bit-identical to an uninterrupted run."""
    port = free_port()
    a, b = tmp_path / "a", tmp_path / "b"
    train = ["train", "--steps", "3000", *STEPS]
    procs = [
        start([*train, "--out", str(d), *process_flags(port, 2, i)]) for i, d in enumerate((a, b))
    ]
    line = procs[0].stdout.readline()
    while line and "training on" not in line:
        line = procs[0].stdout.readline()
    time.sleep(1.0)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    ends = finish(procs)
    assert [s for s, _ in ends] == [143, 143], ends
    for _, err in ends:
        assert len(error_lines(err)) == 1 and "SIGTERM at step" in err
    _, _, step = run_arrays(a)
    assert 0 < step < 3000 and not b.exists()

    port = free_port()
    procs = [
        start(["train", "--resume", str(d), *process_flags(port, 2, i)])
        for i, d in enumerate((a, b))
    ]
    ends = finish(procs)
    assert [s for s, _ in ends] == [0, 0], ends
    assert not b.exists()
    whole = tmp_path / "whole"
    r = jaxninja("launch", "--processes", "2", "--", *train, "--out", str(whole))
    assert r.returncode == 0, r.stderr
    losses, params, step = run_arrays(a)
    ref_losses, ref_params, _ = run_arrays(whole)
    assert step == 3000 and np.array_equal(losses, ref_losses)
    assert all(np.array_equal(x, y) for x, y in zip(params, ref_params, strict=True))


# ----------------------------------------------------------------------------- faults


@pytest.mark.slow
def test_killed_process_ends_the_others(tmp_path):
    """SIGKILL one process mid-run: the other exits non-zero within 60 s with one line, and
    the last periodic checkpoint is intact."""
    port = free_port()
    a, b = tmp_path / "a", tmp_path / "b"
    train = ["train", "--steps", "100000", "--checkpoint-every", "1000", *STEPS]
    procs = [
        start([*train, "--out", str(d), *process_flags(port, 2, i)]) for i, d in enumerate((a, b))
    ]
    wait_for(lambda: (a / "checkpoint.npz").exists(), what="the first checkpoint")
    procs[1].kill()
    t0 = time.monotonic()
    (status, err), _ = finish(procs, timeout=DIED_WITHIN_S + 30)
    assert time.monotonic() - t0 < DIED_WITHIN_S
    assert status == 1, err
    lines = error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("jaxninja: error: lost contact with another")
    assert "checkpoint (step" in lines[0]
    _, _, step = run_arrays(a)  # loads: intact
    assert step >= 1000 and step % 1000 == 0


@pytest.mark.slow
def test_launcher_names_the_killed_process(tmp_path):
    """The launcher ends the others and prints one line naming the process that died first."""
    out = tmp_path / "run"
    args = ["launch", "--", "train", "--steps", "100000", "--checkpoint-every", "1000", *STEPS]
    p = subprocess.Popen(
        [sys.executable, "-m", "jaxninja", *args, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=ROOT,
    )
    wait_for(lambda: (out / "checkpoint.npz").exists(), what="the first checkpoint")
    kids = _children(p.pid)
    assert len(kids) == 2
    victim = max(kids)  # started second: process 1
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    _, err = p.communicate(timeout=DIED_WITHIN_S + 30)
    assert time.monotonic() - t0 < DIED_WITHIN_S
    assert p.returncode == 137
    last = err.splitlines()[-1]
    assert last.startswith("jaxninja launch: process 1 was killed by SIGKILL first; then process 0")
    run_arrays(out)  # intact


@pytest.mark.slow
def test_wrong_count_and_other_settings_end_every_process(tmp_path):
    """A process given another --num-processes, or other flags, ends every process, one line
    each, well within the initialisation timeout."""
    for second in (["--num-processes", "3"], ["--steps", "600"]):
        port = free_port()
        procs = []
        for i in range(2):
            flags = process_flags(port, 2, i)
            steps = ["--steps", "500"]
            if i == 1 and second[0] == "--num-processes":
                flags[3] = "3"
            if i == 1 and second[0] == "--steps":
                steps = second
            procs.append(
                start(["train", *steps, *STEPS, "--out", str(tmp_path / f"{port}-{i}"), *flags])
            )
        t0 = time.monotonic()
        ends = finish(procs, timeout=120)
        assert time.monotonic() - t0 < 90
        for status, err in ends:
            assert status != 0 and len(error_lines(err)) == 1, ends
        (_, first), (_, second_err) = ends
        if second[0] == "--num-processes":
            assert "--num-processes 3 but the coordinator 127.0.0.1" in second_err
            assert "process 1 failed while checking the settings" in first
        else:
            for err in (first, second_err):
                assert "process 1 was started with other settings or data than process 0" in err


def test_process_0_without_process_1_ends_in_one_line_within_the_timeout():
    """Process 0 alone: one line naming the missing process after the stated timeout (JAX's own
    wait ended in SIGABRT and a page of C++ stack after 66 s). A real process, bounded."""
    port = free_port()
    env = child_env(JAXNINJA_INIT_TIMEOUT_S="3")
    t0 = time.monotonic()
    r = jaxninja("train", "--steps", "10", *process_flags(port, 2, 0), env=env, timeout=120)
    took = time.monotonic() - t0
    assert r.returncode == 1, r.stderr
    assert error_lines(r.stderr) == [
        f"jaxninja: error: process 1 of 2 did not reach the coordinator 127.0.0.1:{port} within "
        f"3 s (start every process with --coordinator 127.0.0.1:{port} --num-processes 2); "
        "nothing was trained"
    ]
    assert took < 60  # the 3 s wait, plus starting Python and importing jax on a loaded machine


def test_the_rendezvous_counts_only_the_processes_that_say_hello():
    """Process 0's wait (in this process, on a thread): a stranger's connection, garbage and an
    id out of range are not a process; process 1's hello is answered and ends the wait."""
    port = free_port()
    errors = []

    def serve() -> None:
        try:
            distributed.rendezvous(f"127.0.0.1:{port}", 2, 30, f"127.0.0.1:{port}")
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    thread = threading.Thread(target=serve)
    thread.start()
    wait_for(lambda: _listening(port), 30, "the rendezvous")
    hello = distributed.HELLO
    for junk in (b"", b"GET / HTTP/1.1\r\n", hello + b"7\n", hello + "²\n".encode()):
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(junk)
            conn.shutdown(socket.SHUT_WR)
            assert conn.recv(8) == b""  # not answered
    assert thread.is_alive()
    distributed.wait_for_coordinator("127.0.0.1", port, 30, process_id=1)
    thread.join(30)
    assert not thread.is_alive() and not errors


def test_the_rendezvous_times_out_naming_the_missing_processes():
    port = free_port()
    missing = r"processes 1, 2 of 3 did not reach .* within 0.5 s"
    with pytest.raises(DistributedError, match=missing):
        distributed.rendezvous(f"127.0.0.1:{port}", 3, 0.5, f"127.0.0.1:{port}")


@pytest.mark.slow
def test_unreachable_coordinator_times_out_in_one_line():
    port = free_port()  # nobody listens there
    env = child_env(JAXNINJA_INIT_TIMEOUT_S="5")
    t0 = time.monotonic()
    r = jaxninja("train", "--steps", "10", *process_flags(port, 2, 1), env=env, timeout=120)
    assert time.monotonic() - t0 < 60
    assert r.returncode == 1
    lines = error_lines(r.stderr)
    assert len(lines) == 1
    assert f"cannot reach the coordinator 127.0.0.1:{port} within 5 s" in lines[0]


if __name__ == "__main__":  # one process of test_gradients_and_shards_over_processes
    _worker(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))


@pytest.mark.slow
def test_two_processes_train_a_model_file_as_one(tmp_path):
    """A model file (``train --model``) over 2 processes: the one-process run within 1e-9."""
    from jaxninja.io.checkpoint import load_checkpoint

    model = ["--model", str(ROOT / "examples" / "models" / "tiny_mlp.py")]
    flags = ["--steps", "300", "--dtype", "float64", "--samples", "2", *model]
    one = jaxninja("train", *flags, "--out", str(tmp_path / "one"))
    two = jaxninja(
        "launch", "--processes", "2", "--", "train", *flags, "--out", str(tmp_path / "two")
    )
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    a, b = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    assert a.model == b.model and sorted(a.params) == sorted(b.params)
    for name in a.params:
        assert (
            a.params[name].dtype == np.float64 and relative(b.params[name], a.params[name]) <= RTOL
        )
