"""neurobridge.plotting: layer profiles with ceiling bands, layer x time maps, RDMs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

import neurobridge as nb  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _scores():
    layers = ["a", "b", "c", "d"]
    score = np.array([[0.1, 0.3, 0.25, 0.2], [0.05, 0.1, np.nan, 0.15]])
    return xr.Dataset(
        {"score": (("model", "layer"), score), "ci_low": (("model", "layer"), score - 0.05),
         "ci_high": (("model", "layer"), score + 0.05),
         "depth": (("model", "layer"), [[0, 1, 2, 3], [0, 1, np.nan, 2]]),
         "selected_layer": ("model", ["b", "d"]), "ceiling_lower": 0.4, "ceiling_upper": 0.5},
        coords={"model": ["m1", "m2"], "layer": layers})


def test_layer_profile_draws_scores_ci_and_ceiling_band():
    ax = nb.plotting.plot_layer_profile(_scores(), title="t")
    lines = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-" and len(ln.get_xdata()) > 1]
    ys = sorted(tuple(np.round(ln.get_ydata(), 3)) for ln in lines if len(ln.get_ydata()) in (3, 4))
    assert (0.05, 0.1, 0.15) in ys and (0.1, 0.3, 0.25, 0.2) in ys  # m2 without its missing layer
    # relative depth because the models have different layers
    assert ax.get_xlabel() == "relative depth"
    spans = [p for p in ax.patches if p.get_label() == "noise ceiling"]
    assert len(spans) == 1
    ext = spans[0].get_path().get_extents(spans[0].get_transform()).transformed(ax.transData.inverted())
    assert ext.y0 == pytest.approx(0.4) and ext.y1 == pytest.approx(0.5)
    assert ax.get_title() == "t"


def test_layer_profile_single_model_uses_layer_names():
    da = xr.DataArray([0.2, 0.4, 0.1], dims="layer", coords={"layer": ["conv1", "conv2", "fc"]})
    ax = nb.plotting.plot_layer_profile(da)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["conv1", "conv2", "fc"]
    with pytest.raises(ValueError, match="select one value"):
        nb.plotting.plot_layer_profile(xr.DataArray(np.zeros((2, 3)), dims=("benchmark", "layer")))


def test_layer_time_map():
    st = xr.DataArray(np.arange(12.0).reshape(3, 4), dims=("layer", "time"),
                      coords={"layer": ["a", "b", "c"], "time": [0.0, 0.1, 0.2, 0.3]})
    ax = nb.plotting.plot_layer_time(st)
    img = ax.get_images()[0]
    np.testing.assert_array_equal(img.get_array(), st.values)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="dims \\('layer', 'time'\\)"):
        nb.plotting.plot_layer_time(st.rename(time="t"))


def test_rdm_plot_rank_transform_matches_scipy():
    from scipy.stats import rankdata

    x = np.random.default_rng(0).random((5, 5))
    x = (x + x.T) / 2
    np.fill_diagonal(x, 0)
    r = nb.core.rdm(x, stimulus=list("abcde"))
    ax = nb.plotting.plot_rdm(r, title="rdm")
    shown = np.asarray(ax.get_images()[0].get_array())
    iu = np.triu_indices(5, 1)
    np.testing.assert_allclose(shown[iu], (rankdata(x[iu]) - 1) / (len(iu[0]) - 1))
    np.testing.assert_allclose(shown, shown.T)
    raw = nb.plotting.plot_rdm(r, rank=False, colorbar=False)
    np.testing.assert_allclose(np.asarray(raw.get_images()[0].get_array()), x)
    fig = nb.plotting.plot_rdms(nb.core.rdm(np.stack([x, x]), dims=("layer",), stimulus=list("abcde")))
    assert sum(bool(a.get_images()) for a in fig.axes) == 2
    with pytest.raises(ValueError, match="select one RDM"):
        nb.plotting.plot_rdm(nb.core.rdm(np.stack([x, x]), dims=("layer",)))


def _category_rdm(n_per=(3, 4, 2), names=("human face", "animal body", "artificial inanimate"), seed=1):
    labels = [c for c, k in zip(names, n_per, strict=True) for _ in range(k)]
    n = len(labels)
    x = np.random.default_rng(seed).random((n, n))
    x = (x + x.T) / 2
    np.fill_diagonal(x, 0)
    return nb.core.rdm(x, stimulus=[f"img{i:02d}" for i in range(n)], metric="correlation",
                       coords={"category": ("stimulus", labels)})


def test_rdm_plot_has_metric_colorbar_and_category_ticks():
    r = _category_rdm()
    ax = nb.plotting.plot_rdm(r)
    cbars = [a for a in ax.figure.axes if a is not ax]
    assert len(cbars) == 1 and cbars[0].get_ylabel() == "correlation dissimilarity (percentile)"
    names = ["human face", "animal body", "artificial inanimate"]
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    np.testing.assert_allclose(ax.get_yticks(), [1.0, 4.5, 7.5])  # centres of runs 0-2, 3-6, 7-8
    bounds = sorted({ln.get_ydata()[0] for ln in ax.get_lines() if ln.get_ydata()[0] == ln.get_ydata()[1]})
    np.testing.assert_allclose(bounds, [2.5, 6.5])
    raw = nb.plotting.plot_rdm(r, rank=False, groups=None)
    assert raw.figure.axes[-1].get_ylabel() == "correlation dissimilarity"
    assert [t.get_text() for t in raw.get_yticklabels()] == list(r["stimulus"].values)  # 9 ids: all shown
    with pytest.raises(ValueError, match="no coordinate 'animacy'"):
        nb.plotting.plot_rdm(r, groups="animacy")


def test_rdm_plot_thins_stimulus_ticks():
    x = np.random.default_rng(0).random((92, 92))
    r = nb.core.rdm((x + x.T) / 2 * (1 - np.eye(92)), stimulus=[f"img{i:02d}" for i in range(92)])
    ax = nb.plotting.plot_rdm(r)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"img{i:02d}" for i in range(0, 92, 4)]  # 23 <= 24 labels, every 4th
    assert len(ax.get_xticklabels()) == 23
    assert ax.figure.axes[-1].get_ylabel() == "dissimilarity (percentile)"  # no metric attr


def test_rdm_panels_of_the_report_have_colorbars_and_categories():
    from neurobridge.benchmark._report import _rdm_figure

    brain = _category_rdm()
    model = nb.core.rdm(np.asarray(brain.values)[::-1, ::-1].copy(), stimulus=list(brain["stimulus"].values),
                        metric="correlation")  # as the scoring builds it: ids only
    fig = _rdm_figure(brain, model, "brain (lab-rsa)", "net: layer4")
    panels = [a for a in fig.axes if a.get_images()]
    assert [a.get_title() for a in panels] == ["brain (lab-rsa)", "net: layer4"]
    for a in panels:
        assert [t.get_text() for t in a.get_yticklabels()] == ["human face", "animal body", "artificial inanimate"]
    cbars = [a for a in fig.axes if not a.get_images()]
    assert [a.get_ylabel() for a in cbars] == ["correlation dissimilarity (percentile)"] * 2
