"""``dout / 0`` in a claim (or a forward line) is sympy's complex infinity ``zoo``; it is a
one-line statement error naming the operation and its column, and from a layer file the
file's line and column (exit 2), never a NOT PROVED or a kernel dividing by zero."""

from __future__ import annotations

from pathlib import Path

import pytest

from derivations.language.layer import Layer, load_layer
from derivations.language.names import LayerError


def _linear(claim_b: str, forward_extra: tuple[str, ...] = ()) -> Layer:
    return Layer(
        name="linear",
        axes=("n", "D", "H"),
        inputs={"x": ("n", "D"), "W": ("D", "H"), "b": ("H",)},
        forward=(*forward_extra, "out[i, k] = sum(x[i, j] * W[j, k], j) + b[k]"),
        claims={"b": claim_b},
    )


@pytest.mark.parametrize(
    ("claim", "column", "shown"),
    [
        ("sum(dout / 0, axis=0)", 5, "'dout / 0'"),
        ("sum(0 / 0 * dout, axis=0)", 5, "'0 / 0'"),
        ("sum(dout / (n - n), axis=0)", 5, "'dout / (n - n)'"),
        ("sum(dout * 0**-1, axis=0)", 12, "'0 ** (-1)'"),
    ],
)
def test_a_claim_dividing_by_zero_is_one_line_naming_its_column(claim, column, shown):
    with pytest.raises(LayerError) as caught:
        _linear(claim)
    message = str(caught.value)
    assert "\n" not in message and f"column {column}:" in message and shown in message
    assert "zoo" not in message


def test_a_forward_line_dividing_by_zero_names_its_column_in_the_line():
    with pytest.raises(LayerError, match=r"forward line 1 .*, column 11: division by zero"):
        _linear("sum(dout, axis=0)", forward_extra=("h[i, j] = x[i, j] / 0",))


def test_a_finite_division_is_read():
    assert _linear("sum(dout / 2, axis=0)").claim_text["b"] == "sum(dout / 2, axis=0)"


def test_from_a_file_the_error_names_the_file_line_and_column(tmp_path: Path):
    path = tmp_path / "layer.py"
    path.write_text(
        "from derivations import Layer\n"
        "\n"
        "layer = Layer(\n"
        '    name="linear",\n'
        '    axes=("n", "D", "H"),\n'
        '    inputs={"x": ("n", "D"), "W": ("D", "H"), "b": ("H",)},\n'
        '    forward=("out[i, k] = sum(x[i, j] * W[j, k], j) + b[k]",),\n'
        '    claims={"b": "sum(dout / 0, axis=0)"},\n'
        ")\n"
    )
    with pytest.raises(LayerError) as caught:
        load_layer(path)
    line = path.read_text().splitlines()[7]
    column = line.index("dout / 0") + 1
    assert str(caught.value).startswith(f"{path}:8:{column}: claim for b")


def test_the_command_exits_2_with_one_line(tmp_path: Path, capsys):
    from jaxninja._cli import main

    path = tmp_path / "layer.py"
    path.write_text(
        "from derivations import Layer\n"
        'layer = Layer(name="l", axes=("n",), inputs={"x": ("n",)},\n'
        '    forward=("out[i] = x[i] * 2",), claims={"x": "dout / 0"})\n'
    )
    assert main(["derive", "--layer", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{path}:3:" in err and "division by zero" in err
