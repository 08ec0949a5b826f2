"""``jaxninja check`` end to end: the table, the JSON, the exit status, the plots."""

import json

import pytest

from jaxninja._cli import main
from jaxninja.config import CheckConfig
from jaxninja.gradcheck.lecture_check import cross_check, format_table
from tests.helpers import ROOT


def test_json_has_every_row_and_passes(names_txt, capsys):
    status = main(["check", "--data", str(names_txt), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0 and out["ok"]
    assert out["dataset"]["train"] == [182625, 3] and out["n_params"] == 4137
    assert set(out) >= {"config", "dataset", "n_params", "loss", "rows"}
    by_ref = {}
    for row in out["rows"]:
        assert set(row) >= {"name", "shape", "against", "exact", "close", "maxdiff", "eps_scale"}
        by_ref.setdefault(row["against"], []).append(row)
    assert len(by_ref["jax"]) == 26 and all(r["exact"] for r in by_ref["jax"])
    assert len(by_ref["torch"]) == 26 and len(by_ref["torch-manual"]) == 26
    assert [r["name"] for r in by_ref["fused"]] == [
        "logits",
        "hprebn",
        "loss (fwd)",
        "hpreact (fwd)",
    ]


def test_table_names_every_row(names_dataset):
    result = cross_check(CheckConfig(against=("jax",)), names_dataset)
    table = format_table(result)
    assert "jax: 26/26 bit-exact" in table and "all rows within contract" in table
    assert table.count(" jax ") == 26


def test_notebook_tanh_line_fails_the_contract_on_fma_cpus(names_dataset):
    torch = pytest.importorskip("torch")
    result = cross_check(CheckConfig(against=("torch",), torch_tanh="notebook"), names_dataset)
    manual = [r for r in result.rows if r.against == "torch-manual"]
    fma = torch.backends.cpu.get_cpu_capability() != "DEFAULT"
    assert result.ok is (not fma)
    assert sum(r.exact for r in manual) == (11 if fma else 26)


def test_plots_are_written(names_txt, tmp_path, capsys):
    status = main(
        ["check", "--data", str(names_txt), "--against", "jax", "--plot", str(tmp_path / "plots")]
    )
    capsys.readouterr()
    assert status == 0
    for name in ("dlogits.png", "errors.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_float64_odd_shapes(names_txt, capsys, x64):
    status = main(
        [
            "check",
            "--data",
            str(names_txt),
            "--dtype",
            "float64",
            "--batch-size",
            "7",
            "--n-hidden",
            "37",
            "--block-size",
            "5",
            "--n-embd",
            "6",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert status == 0 and out["ok"] and out["config"]["dtype"] == "float64"


@pytest.mark.slow
def test_devices_flag_in_a_4_device_subprocess(names_txt, tmp_path):
    """`check --devices 4` and `train --devices 4` end to end on 4 simulated CPU devices."""
    import os
    import subprocess
    import sys

    root = ROOT
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        PYTHONPATH=str(root),
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
    )
    run = [sys.executable, "-m", "jaxninja"]
    out = subprocess.run(
        [*run, "check", "--data", str(names_txt), "--devices", "4", "--against", "jax", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["ok"] and {"4dev vs 1dev", "4dev vs jax"} <= {
        r["against"] for r in result["rows"]
    }
    subprocess.run(
        [
            *run,
            "train",
            "--data",
            str(names_txt),
            "--devices",
            "4",
            "--steps",
            "300",
            "--n-hidden",
            "16",
            "--out",
            str(tmp_path / "run"),
            "--samples",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert (tmp_path / "run" / "checkpoint.npz").is_file()


def test_jit_and_both_keep_the_backwards_order(names_dataset):
    """Under jit the rows used to come out alphabetically (C W1 W2 b1 ...): jax.jit sorts a
    returned dict's keys. Every mode now lists them in the backward's order."""
    eager = cross_check(CheckConfig(against=("jax",)), names_dataset)
    order = [r.name for r in eager.rows if r.against == "jax"]
    assert order[:3] == ["logprobs", "probs", "counts_sum_inv"] and order[-1] == "C"
    both = cross_check(CheckConfig(against=("jax",)), names_dataset, jit="both")
    for mode in ("eager", "jit"):
        assert [r.name for r in both.rows if r.against == "jax" and r.mode == mode] == order
    assert both.as_json()["config"]["jit"] == "both" and both.as_json()["format"] == 3
    table = format_table(both)
    assert "jax (eager): 26/26 bit-exact" in table and "jax (jit):" in table
    assert table.count("\nlogprobs ") == 1  # one line per row, a column per mode
