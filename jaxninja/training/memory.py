"""Will it fit? An estimate of a run's memory, checked against the machine before any work.

A run that cannot fit should fail in one line at start-up, not with a traceback after hours of
training. The estimate counts what grows with the settings: the parameters (and their gradients
and the updated copy inside a step), the training split's contexts on host and device, one
chunk's gathered minibatches, a step's activations, the loss history, the evaluation chunks
and the sampling buffers. It is an upper-bound style sum, not a measurement; what jax itself
needs (its runtime, compiled code) is the fixed :data:`BASELINE`.

"What the machine has" is the smallest cgroup memory limit set on this process (its own group
and each parent, as containers and service managers set them, then the top level), else the
available memory the kernel reports (``MemAvailable``); where neither can be read, nothing is
refused.
"""

from __future__ import annotations

from pathlib import Path

from jaxninja.config import TrainConfig
from jaxninja.errors import ConfigError, Name

BASELINE = 512 * 2**20  # the Python process, jax's runtime and compiled programs
CGROUP_FILES = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)
MEMINFO = Path("/proc/meminfo")
PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")
MAX_NAME = 100  # characters sampled per name at most (train.sample_names' max_len)


def own_cgroup_files(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> list[Path]:
    """The memory limit files of this process's own cgroup and each of its parents (cgroup v2,
    from ``/proc/self/cgroup``): a limit set on the process's own group (as containers and
    service managers set it) is not in the top-level file."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    files = []
    for line in lines:
        if line.startswith("0::/"):
            group = root / line[len("0::/") :].strip()
            while group != root and root in group.parents:
                files.append(group / "memory.max")
                group = group.parent
    return files


def available_bytes() -> int | None:
    """The smallest cgroup limit set on this process (its own group, its parents, the top
    level) if any, else MemAvailable, else None (unknown)."""
    limits = []
    for path in [*own_cgroup_files(), *CGROUP_FILES]:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # "max" or a huge number: no limit
            limits.append(int(text))
    if limits:
        return min(limits)
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_bytes(
    config: TrainConfig,
    n_train: int,
    vocab_size: int,
    samples: int = 0,
    chunk_steps: int = 1_000,
    eval_rows: int = 8_192,
    sample_batch: int = 4_096,
    runs: int = 1,
) -> int:
    """Bytes a run of ``config`` needs at its peak (``runs`` models trained side by side)."""
    itemsize = 8 if config.dtype == "float64" else 4
    E, H, T, B, V = config.n_embd, config.n_hidden, config.block_size, config.batch_size, vocab_size
    n_params = V * E + T * E * H + H + H * V + V + 2 * H
    params = 4 * n_params * itemsize  # parameters, gradients, the updated copy, a saved copy
    data = 2 * n_train * (T + 1) * 4  # int32 contexts and targets, on host and on the device
    chunk = chunk_steps * B * (T + 1) * 4 + chunk_steps * 4  # gathered minibatches, indices
    step = 12 * B * max(H, V, T * E) * itemsize  # a step's activations and their gradients
    losses = config.steps * (4 + 8)  # the float32 history, and its copy when it is saved
    evaluation = 4 * eval_rows * max(H, V) * itemsize
    sampling = sampling_bytes(samples, H, V, itemsize, sample_batch)
    per_run = params + chunk + step + losses + evaluation
    return BASELINE + data + runs * per_run + sampling


def sampling_bytes(
    samples: int, n_hidden: int, vocab_size: int, itemsize: int, sample_batch: int = 4_096
) -> int:
    """Bytes that drawing ``samples`` names needs: a batch's activations and characters, and
    every name's characters (``train --samples`` and ``sample --num`` alike)."""
    names = min(samples, sample_batch)
    batch = names * (MAX_NAME * 4 + 4 * max(n_hidden, vocab_size) * itemsize)
    return batch + samples * MAX_NAME * 4


def check_fits(needed: int, what: str | tuple[str | Name, ...], available: int | None = None):
    """Refuse, in one line, work that needs more memory than the machine has; ``what`` names the
    work (parts naming settings by :class:`Name`, spelled as the caller spelled them)."""
    available = available_bytes() if available is None else available
    if available is not None and needed > available:
        raise ConfigError(
            *((what,) if isinstance(what, str) else what),
            f" needs about {needed / 2**30:.1f} GiB of memory but this machine has "
            f"{available / 2**30:.1f} GiB available; use smaller settings",
        )
