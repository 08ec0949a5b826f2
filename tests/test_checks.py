"""Each bad setting is refused with a ConfigError that names the setting and the value: its
keyword (``batch_size=``) as Python shows the error, its flag (``--batch-size``) as the command
line prints it."""

from __future__ import annotations

import importlib.util
import math

import jax
import jax.numpy as jnp
import pytest

from jaxninja import checks
from jaxninja.errors import ConfigError, Name
from tests.helpers import names_setting


@pytest.mark.parametrize(
    "check, value, keyword, flag, why",
    [
        (checks.check_batch_size, 1, "batch_size", "--batch-size", "n - 1"),
        (checks.check_batch_size, 0, "batch_size", "--batch-size", "n - 1"),
        (checks.check_batch_size, -32, "batch_size", "--batch-size", "n - 1"),
        (checks.check_block_size, 0, "block_size", "--block-size", "context"),
        (checks.check_steps, -1, "steps", "--steps", ""),
    ],
)
def test_integer_out_of_range(check, value, keyword, flag, why) -> None:
    with pytest.raises(ConfigError) as info:
        check(value)
    names_setting(info.value, f"^{{}} .*got {value}.*{why}", keyword, flag)


@pytest.mark.parametrize("value", [-1, 2**32])
def test_seed_out_of_range(value: int) -> None:
    """jax.random.key wraps seeds modulo 2**32 (without x64): refuse rather than alias."""
    with pytest.raises(ConfigError) as info:
        checks.check_seed(value)
    names_setting(info.value, rf"^{{}} must be an integer in \[0, 2\*\*32\), got {value}", "seed",
                  "--seed")  # fmt: skip


@pytest.mark.parametrize("name", [Name("n_embd", "--n-embd"), Name("n_hidden", "--n-hidden")])
@pytest.mark.parametrize("value", [0, -3])
def test_width_out_of_range(name: Name, value: int) -> None:
    with pytest.raises(ConfigError) as info:
        checks.check_width(value, name)
    names_setting(info.value, f"^{{}} must be an integer >= 1, got {value}", *name)


def test_a_flag_only_the_command_line_has_is_shown_as_it_is() -> None:
    with pytest.raises(ConfigError, match="^--port must be an integer >= 1, got 0$"):
        checks.check_int("--port", 0, 1)


def test_integers_in_range_pass() -> None:
    assert checks.check_batch_size(2) == 2
    assert checks.check_block_size(1) == 1
    assert checks.check_width(1, "--n-embd") == 1
    assert checks.check_steps(0) == 0
    assert checks.check_seed(2**32 - 1) == 2**32 - 1
    with pytest.raises(ConfigError, match="got True"):  # a bool is not a batch size
        checks.check_batch_size(True)


@pytest.mark.parametrize("value", [0.0, -0.1, math.inf, -math.inf, math.nan, "abc"])
def test_learning_rate_refused(value) -> None:
    with pytest.raises(ConfigError) as info:
        checks.check_learning_rate(value)
    names_setting(info.value, f"^{{}} must be .*{value}", "lr", "--lr")


def test_learning_rate_accepted() -> None:
    assert checks.check_learning_rate(1e-6) == 1e-6
    assert checks.check_learning_rate(1e6) == 1e6  # large but finite: training catches blow-ups


def test_unknown_dtype() -> None:
    with pytest.raises(ConfigError) as info:
        checks.check_dtype("float16")
    names_setting(info.value, "^unknown {} 'float16' .*float32, float64", "dtype", "--dtype")
    with pytest.raises(ConfigError) as info:
        checks.dtype_scope("float16").__enter__()
    names_setting(info.value, "^unknown {} 'float16' .*float32, float64", "dtype", "--dtype")


def test_float32_leaves_x64_alone(x64_off) -> None:
    with checks.dtype_scope("float32") as dtype:
        assert dtype == jnp.float32
        assert not jax.config.jax_enable_x64


def test_float64_switches_on_x64_for_the_block_only(x64_off) -> None:
    """The one behaviour of every entry point: x64 on inside, restored after (issue 26)."""
    with checks.dtype_scope("float64") as dtype:
        assert dtype == jnp.float64
        assert jnp.zeros(1, jnp.float64).dtype == jnp.float64
        assert checks.float_dtype("float64") == jnp.float64
    assert not jax.config.jax_enable_x64
    with pytest.raises(ConfigError) as info:
        checks.float_dtype("float64")  # computing in float64 outside the scope is refused
    names_setting(info.value, "^{} float64 needs jax_enable_x64", "dtype", "--dtype")


def test_float64_scope_restores_x64_that_was_on(x64) -> None:
    with checks.dtype_scope("float64"):
        pass
    assert jax.config.jax_enable_x64


def test_float64_without_x64_support(x64_off, monkeypatch: pytest.MonkeyPatch) -> None:
    """A jax whose x64 switch does nothing: float64 arrays come out float32, which is refused."""
    monkeypatch.setattr(jax.config, "update", lambda name, value: None)
    with pytest.raises(ConfigError) as info:
        with checks.dtype_scope("float64"):
            pass
    names_setting(info.value, "^{} float64: jax_enable_x64 did not take effect", "dtype", "--dtype")


def test_devices() -> None:
    assert checks.resolve_device("cpu").platform == "cpu"
    assert checks.resolve_device("auto") == jax.devices()[0]
    with pytest.raises(ConfigError) as info:
        checks.resolve_device("npu")
    names_setting(info.value, "^unknown {} 'npu'", "device", "--device")


@pytest.mark.skipif("tpu" in {d.platform for d in jax.devices()}, reason="a TPU is present")
def test_device_not_present() -> None:
    with pytest.raises(ConfigError) as info:
        checks.resolve_device("tpu")
    names_setting(info.value, "^{} tpu: no such device here .jax sees: ", "device", "--device")


def test_against_torch_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    with pytest.raises(ConfigError) as info:
        checks.check_against("torch")
    names_setting(info.value, "^{} torch: torch is not installed", "against", "--against")
    assert checks.check_against("jax") == "jax"


def test_against_unknown() -> None:
    with pytest.raises(ConfigError) as info:
        checks.check_against("tf")
    names_setting(info.value, "^unknown {} 'tf'", "against", "--against")
