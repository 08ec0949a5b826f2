"""``check --plot`` pictures, tested by what can be measured (issue 24): no two texts overlap,
one legend entry per colour used, the bound drawn, no -0.04..0.04 axis on an all-exact panel,
and a per-element map that circles the worst elements."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_hex

from jaxninja._cli import main
from jaxninja.gradcheck import plots
from jaxninja.gradcheck.compare import Row, compare

NAN = float("nan")


def _rows(mode: str = "") -> list[Row]:
    long = "a_rather_long_intermediate_name"
    return [
        *(Row(f"x{i}", (3,), "jax", True, True, 0.0, 0.0, 0.0, mode=mode) for i in range(20)),
        Row("logits", (4, 5), "torch", False, True, 1e-8, 3.0, 64.0, mode=mode),
        Row(long, (4, 5), "torch", False, False, 1e-2, 8e6, 64.0, mode=mode),
        Row("b1", (5,), "torch", True, True, 0.0, 0.0, 128.0, mode=mode),
        Row("W", (2, 3), "torch", False, False, NAN, NAN, 64.0, "shape (3, 2)", mode=mode),
    ]


def _overlaps(fig) -> list[tuple[str, str]]:
    texts = list(plots.text_extents(fig))
    bad = []
    for (a, ea), (b, eb) in itertools.combinations(texts, 2):
        w = min(ea.x1, eb.x1) - max(ea.x0, eb.x0)
        h = min(ea.y1, eb.y1) - max(ea.y0, eb.y0)
        if w > 0.5 and h > 0.5:  # half a pixel: touching is not overlapping
            bad.append((a, b))
    return bad


@pytest.mark.parametrize("modes", [("",), ("eager", "jit")])
def test_no_two_texts_overlap(modes):
    fig = plots.errors_figure([r for m in modes for r in _rows(m)])
    assert _overlaps(fig) == []
    plt.close(fig)


def _colours(ax) -> set[str]:
    out = set()
    for patch in ax.patches:
        out.add(to_hex(patch.get_facecolor()))
    for coll in ax.collections:
        out |= {to_hex(c) for c in coll.get_facecolor()} | {to_hex(c) for c in coll.get_edgecolor()}
    return out - {to_hex("black")}


def test_one_legend_entry_per_colour_used_and_the_bound_drawn():
    fig = plots.errors_figure(_rows())
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    colours = [to_hex(h.get_color()) for h in legend.legend_handles]
    used = set().union(*(_colours(ax) for ax in fig.axes if ax.get_visible()))
    kinds = [plots.EXACT, plots.WITHIN, plots.OVER, plots.UNMEASURED]
    assert labels == [*kinds, "bound (eps·scale)"]
    assert set(colours[:-1]) == used and len(set(colours)) == len(colours)
    torch = next(ax for ax in fig.axes if ax.get_title() == "vs torch")
    ticks = [c for c in torch.collections if to_hex(c.get_facecolor()[0]) == to_hex("black")]
    (bound,) = ticks  # the bound of every row that has one, at its value
    assert sorted(bound.get_offsets()[:, 0]) == [64.0, 64.0, 64.0, 128.0]
    plt.close(fig)


def test_a_legend_lists_only_what_is_drawn():
    fig = plots.errors_figure(_rows()[:20])  # all bit-exact: no bound, no bars
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [plots.EXACT]
    plt.close(fig)


def test_an_all_exact_panel_has_no_meaningless_axis():
    fig = plots.errors_figure(_rows())
    jax = next(ax for ax in fig.axes if ax.get_title() == "vs jax")
    assert list(jax.get_xticks()) == [] and jax.get_xlabel() == "all 20 rows bit-exact"
    shown = [text for text, _ in plots.text_extents(fig)]
    assert not any("0.04" in t for t in shown)
    plt.close(fig)


def test_the_map_circles_the_worst_elements():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((6, 4, 5)).astype(np.float32)
    mine = ref.copy()
    planted = [(1, 2, 3), (4, 0, 0), (5, 3, 4)]
    for k, idx in enumerate(planted):
        mine[idx] += 1e-3 * (k + 1)
    row = compare("h", mine, ref, "jax", bound=32.0)
    fig = plots.element_map_figure(row, mine, ref)
    worst = plots.worst_elements(np.abs(mine.astype(float) - ref) / (row.maxdiff / row.eps_scale))
    assert set(worst[:3]) == set(planted) and worst[0] == (5, 3, 4)  # the largest first
    ax = fig.axes[0]
    circled = {tuple(int(v) for v in p) for p in ax.collections[0].get_offsets()}
    for i, j, k in planted:  # (6, 4, 5) drawn as (6, 20): column j * 5 + k
        assert (j * 5 + k, i) in circled
    notes = " ".join(t for t, _ in plots.text_extents(fig))
    assert "(5, 3, 4)" in notes and "bound: 32 eps·scale" in notes
    assert _overlaps(fig) == []
    plt.close(fig)


def test_plot_writes_a_map_per_failing_row(tmp_path, capsys):
    from tests.gradcheck.test_model_check import tiny

    path = tiny(tmp_path, ("dh = (1 - acts", "dh = 2 * (1 - acts"))
    out = tmp_path / "plots"
    status = main(["check", "--model", str(path), "--against", "jax", "--plot", str(out)])
    capsys.readouterr()
    assert status == 1
    names = sorted(p.name for p in out.iterdir())
    assert names == ["errors.png", "where_jax_W.png", "where_jax_b.png", "where_jax_h.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in out.iterdir())


def test_every_reference_and_mode_gets_its_maps(tmp_path, capsys):
    """`--jit both --against jax,fd`: a failing row gets a map in every column, the jitted
    backward's and fd's (against its central differences) as well as eager jax's."""
    from tests.gradcheck.test_model_check import tiny

    path = tiny(tmp_path, ("dh = (1 - acts", "dh = 2 * (1 - acts"))
    out = tmp_path / "plots"
    args = ["check", "--model", str(path), "--against", "jax,fd", "--jit", "both"]
    status = main([*args, "--dtype", "float64", "--plot", str(out)])
    capsys.readouterr()
    assert status == 1
    names = {p.name for p in out.iterdir()}
    for against, mode in itertools.product(("jax", "fd"), ("eager", "jit")):
        assert f"where_{against}_{mode}_h.png" in names, (against, mode, sorted(names))
    assert len(names) - 1 <= plots.MAX_MAPS
    row = Row("h", (2, 3), "fd", False, False, 1.0, 10.0, 1.0, mode="jit")
    fig = plots.element_map_figure(row, np.ones((2, 3)), np.zeros((2, 3)), "jit")
    assert fig.axes[0].get_title() == "h vs fd, jit: where it differs (2x3)"  # the mode named
    plt.close(fig)


def test_fused_and_torch_manual_rows_get_maps(names_dataset, tmp_path, monkeypatch):
    """The lecture's own rows (Exercise 2's kernel as ``fused``, torch's manual backward as
    ``torch-manual``) keep their arrays: a failing one is mapped like the others."""
    pytest.importorskip("torch")
    import torch_ref
    from jaxninja.config import CheckConfig
    from jaxninja.gradcheck import lecture_check
    from jaxninja.lecture import generated

    real_ce, real_manual = generated.cross_entropy_backward, torch_ref.manual_backward

    def ce(logits, yb):  # a planted 1e-3 in Exercise 2's kernel
        return real_ce(logits, yb) * 1.001

    def manual(tp, fwd, tanh):  # and in torch's manual dC
        grads = real_manual(tp, fwd, tanh)
        grads["C"] = grads["C"] * 1.001
        return grads

    monkeypatch.setattr(generated, "cross_entropy_backward", ce)
    monkeypatch.setattr(torch_ref, "manual_backward", manual)
    cfg = CheckConfig(against=("jax", "torch"))
    result = lecture_check.cross_check(cfg, names_dataset, explain=False)
    failing = {(r.against, r.name) for r in result.rows if not r.ok}
    assert failing == {("fused", "logits"), ("torch-manual", "C")}, failing
    names = {p.name for p in plots.save_plots(result, tmp_path)}
    assert {"where_fused_logits.png", "where_torch-manual_C.png"} <= {
        n.split("/")[-1] for n in map(str, names)
    }
    (row, mine, ref) = [a for a in plots.failing_arrays(result) if a[0].against == "fused"][0]
    assert mine.shape == ref.shape == (32, 27)
    # the planted factor, up to the kernel's own rounding (the fused bound, 64 eps·scale)
    allowed = 64 * np.finfo(np.float32).eps * np.abs(ref).max()
    assert np.abs(mine.astype(np.float64) - ref * 1.001).max() <= allowed
