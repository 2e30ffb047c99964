"""The data objects: JSON shapes of the data model, filling, statistics, trends, time series."""

from __future__ import annotations

import json
import math
import random
import statistics
import subprocess
import sys
import time
from typing import Any

import pytest
from support import ROOT

from slowdash_stores._element import DataElement
from slowdash_stores._graph import Graph, GraphYStat
from slowdash_stores._histogram import (
    Histogram,
    Histogram2d,
    Histogram2dBasicStat,
    HistogramBasicStat,
    HistogramCountStat,
)
from slowdash_stores._table import Table, Tree
from slowdash_stores._timeseries import TimeSeries
from slowdash_stores._trend import RateTrend, Trend


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN and Infinity, as browsers' JSON.parse does."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} in JSON text: {text}")

    return json.loads(text, parse_constant=refuse)


# ---------------------------------------------------------------------------------------------
# histograms


def test_histogram_json_shape_is_the_data_models() -> None:
    hist = Histogram(4, 0, 4)
    hist.fill(0.5)
    hist.fill([1.5, 1.2])
    expected = {"bins": {"min": 0, "max": 4}, "counts": [1, 2, 0, 0]}
    assert hist.to_json() == expected
    assert str(hist) == '{"bins":{"min":0,"max":4},"counts":[1,2,0,0]}'


def test_histogram_bin_edges_belong_to_the_upper_bin() -> None:
    hist = Histogram(10, 0, 1)
    for k in range(10):
        assert hist.bin_of(k / 10) == k  # 0.3 is bin 3, not bin 2 by rounding
    hist.fill(0)
    hist.fill(math.nextafter(1.0, 0.0))
    hist.fill(1.0)
    hist.fill(math.nextafter(0.0, -1.0))
    hist.fill([math.inf, -math.inf])
    assert hist.counts[0] == 1
    assert hist.counts[9] == 1
    assert (hist.underflow, hist.overflow) == (2, 2)
    assert sum(hist.counts) == 2


def test_histogram_weights_keep_integers_until_a_float_comes() -> None:
    hist = Histogram(2, 0, 2)
    hist.fill([0.5, 0.5, 1.5], weight=2)
    assert hist.counts == [4, 2]
    assert all(type(c) is int for c in hist.counts)
    hist.fill(1.5, weight=0.25)
    assert hist.counts == [4, 2.25]
    hist.fill([0.5, 1.5, 3.0], weight=[1, 2, 5])
    assert hist.counts == [5, 4.25]
    assert hist.overflow == 5


def test_histogram_rejects_bad_input_without_filling_anything() -> None:
    hist = Histogram(2, 0, 2)
    with pytest.raises(ValueError, match="2 weights for 3 values"):
        hist.fill([0.5, 0.5, 1.5], weight=[1, 2])
    with pytest.raises(TypeError, match="value must be a number"):
        hist.fill([0.5, "1.5"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="value must be a number"):
        hist.fill(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="weight must be a number"):
        hist.fill(0.5, weight="2")  # type: ignore[arg-type]
    assert hist.counts == [0, 0]
    assert (hist.underflow, hist.overflow, hist.nan_count) == (0, 0, 0)


def test_histogram_counts_nan_entries_apart() -> None:
    hist = Histogram(2, 0, 2)
    hist.fill([math.nan, 0.5])
    hist.fill(1.5, weight=math.nan)
    hist.fill(1.5, weight=math.inf)
    assert hist.counts == [1, 0]
    assert (hist.underflow, hist.overflow, hist.nan_count) == (0, 0, 3)
    strict_json(str(hist))


def test_histogram_construction_checks() -> None:
    reversed_range = Histogram(2, 4, 0)
    assert (reversed_range.range_min, reversed_range.range_max) == (0, 4)  # swapped, as SlowPy
    with pytest.raises(ValueError, match="empty range"):
        Histogram(10, 1, 1)
    with pytest.raises(ValueError, match="at least 1"):
        Histogram(0, 0, 1)
    with pytest.raises(TypeError, match="integer"):
        Histogram(2.5, 0, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        Histogram(2, 0, math.nan)
    with pytest.raises(TypeError, match="number"):
        Histogram(2, "0", 1)  # type: ignore[arg-type]


def test_histogram_clear_keeps_attributes_and_functors() -> None:
    hist = Histogram(2, 0, 2)
    hist.add_attr("title", "energy")
    hist.add_stat("run", 7)
    hist.add_stat(HistogramBasicStat(["n"]))
    hist.fill([0.5, -1, 5, math.nan])
    hist.clear()
    assert hist.to_json() == {
        "_attr": {"title": "energy"},
        "_stat": {"n": 0},
        "bins": {"min": 0, "max": 2},
        "counts": [0, 0],
    }
    assert (hist.underflow, hist.overflow, hist.nan_count) == (0, 0, 0)


def test_histogram_rebin_merges_and_narrows() -> None:
    hist = Histogram(4, 0, 4)
    hist.fill([0.5, 1.5, 1.5, 2.5, 3.5, 3.5, 3.5])
    hist.rebin(2)
    assert hist.counts == [3, 4]
    assert all(type(c) is int for c in hist.counts)  # whole bins moved
    hist.rebin(4, 1, 3)  # bins of width 0.5 over [1, 3): each old half bin splits in two
    assert hist.counts == pytest.approx([0.75, 0.75, 1.0, 1.0])
    assert hist.underflow == pytest.approx(1.5)
    assert hist.overflow == pytest.approx(2.0)
    assert sum(hist.counts) + hist.underflow + hist.overflow == pytest.approx(7)


def test_histogram_basic_stat_matches_a_direct_computation() -> None:
    rng = random.Random(1)
    values = [rng.gauss(5, 1.5) for _ in range(500)]
    hist = Histogram(20, 0, 10)
    hist.fill(values)
    hist.add_stat(HistogramBasicStat(ndigits=None))
    centres = [0.25 + 0.5 * k for k in range(20)]
    n = sum(hist.counts)
    mean = sum(c * x for c, x in zip(hist.counts, centres, strict=True)) / n
    sd = math.sqrt(sum(c * (x - mean) ** 2 for c, x in zip(hist.counts, centres, strict=True)) / n)
    under = sum(1 for v in values if v < 0)
    over = sum(1 for v in values if v >= 10)
    stats = hist.to_json()["_stat"]
    assert stats["n"] == n == 500 - under - over
    assert (stats["underflow"], stats["overflow"]) == (under, over)
    assert stats["mean"] == pytest.approx(mean)
    assert stats["stdev"] == pytest.approx(sd)


def test_histogram_basic_stat_aliases_rounding_and_empty() -> None:
    hist = Histogram(3, 0, 3)
    stat = HistogramBasicStat(["Entries", "outliers", "Average", "RMS"], ndigits=2)
    hist.add_stat(stat)
    assert hist.to_json()["_stat"] == {"Entries": 0, "outliers": 0, "Average": None, "RMS": None}
    assert '"Average":null' in str(hist)
    hist.fill([0.5, 1.5, 1.5, -3])
    assert hist.to_json()["_stat"] == {"Entries": 3, "outliers": 1, "Average": 1.17, "RMS": 0.47}
    with pytest.raises(ValueError, match="unknown field 'median'"):
        HistogramBasicStat(["n", "median"])
    with pytest.raises(TypeError, match="for a Histogram"):
        stat(Graph())  # type: ignore[arg-type]


def test_histogram_count_stat_interpolates_partial_bins() -> None:
    hist = Histogram(4, 0, 4)
    hist.fill([0.5, 1.5, 2.5, 3.5], weight=[1, 2, 3, 4])
    assert HistogramCountStat(0.5, 2.5)(hist) == {"Counts(0.5,2.5)": 4.0}  # 0.5 + 2 + 1.5
    assert HistogramCountStat(1.25, 1.75, label="peak")(hist) == {"peak": 1.0}
    assert HistogramCountStat(-10, 10)(hist) == {"Counts(-10,10)": 10.0}
    with pytest.raises(ValueError, match="must not be above"):
        HistogramCountStat(3, 1)


def test_histogram2d_shape_fill_and_stats() -> None:
    hist = Histogram2d(2, 0, 2, 3, 0, 3)
    hist.fill([0.5, 1.5, 1.5], [0.5, 2.5, 2.5])
    hist.fill(5, 0.5)
    hist.fill(math.nan, 1)
    assert hist.to_json() == {
        "xbins": {"min": 0, "max": 2},
        "ybins": {"min": 0, "max": 3},
        "counts": [[1, 0], [0, 0], [0, 2]],  # counts[y][x]
    }
    assert (hist.outliers, hist.nan_count) == (1, 1)
    with pytest.raises(ValueError, match="x has 2 values but y has 1"):
        hist.fill([0.5, 0.5], [0.5])
    with pytest.raises(TypeError, match="both"):
        hist.fill([0.5], 0.5)
    stats = Histogram2dBasicStat(ndigits=None)(hist)
    xs, ys = [0.5, 1.5, 1.5], [0.5, 2.5, 2.5]
    assert stats["n"] == 3
    assert stats["outliers"] == 1
    assert stats["x_mean"] == pytest.approx(statistics.fmean(xs))
    assert stats["y_mean"] == pytest.approx(statistics.fmean(ys))
    assert stats["x_stdev"] == pytest.approx(statistics.pstdev(xs))
    assert stats["y_stdev"] == pytest.approx(statistics.pstdev(ys))


# ---------------------------------------------------------------------------------------------
# graphs


def test_graph_json_shape_and_optional_columns() -> None:
    graph = Graph(["channel", "value"])
    graph.fill(0, 1.5)  # the seed's spelling
    graph.add_point(1, 2.5)
    assert graph.to_json() == {"labels": ["channel", "value"], "x": [0.0, 1.0], "y": [1.5, 2.5]}
    graph.add_point([2, 3], [3.5, math.nan], y_err=[0.1, None])
    assert graph.to_json() == {
        "labels": ["channel", "value"],
        "x": [0.0, 1.0, 2.0, 3.0],
        "y": [1.5, 2.5, 3.5, None],
        "y_err": [None, None, 0.1, None],
    }
    assert len(graph) == 4
    strict_json(str(graph))
    graph.clear()
    assert graph.to_json() == {"labels": ["channel", "value"], "x": [], "y": []}


def test_graph_rejects_mismatched_and_mixed_input_without_adding() -> None:
    graph = Graph()
    with pytest.raises(ValueError, match="y has 3 values but x has 2"):
        graph.add_point([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="y_err has 1 values but x has 2"):
        graph.add_point([1, 2], [1, 2], y_err=[0.1])
    with pytest.raises(TypeError, match="both be numbers or both be sequences"):
        graph.add_point([1, 2], 3)
    with pytest.raises(TypeError, match="z is a sequence"):
        graph.add_point(1, 2, z=[3])
    with pytest.raises(TypeError, match="y must be a number"):
        graph.add_point(1, "2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="x_err must be a sequence"):
        graph.add_point([1], [2], x_err=0.5)
    assert len(graph) == 0
    assert graph.x == graph.y == graph.x_err == []
    with pytest.raises(ValueError, match=r"\[x, y\]"):
        Graph(["x"])
    with pytest.raises(TypeError, match="list of strings"):
        Graph("xy")


def test_graph_y_stat_matches_statistics() -> None:
    graph = Graph()
    ys = [1.0, 4.0, 2.5, 7.25]
    graph.add_point(list(range(4)), ys)
    graph.add_point(4, math.nan)
    graph.add_stat(GraphYStat(ndigits=None))
    stats = graph.to_json()["_stat"]
    assert stats["n"] == 5
    assert stats["y-mean"] == pytest.approx(statistics.fmean(ys))
    assert stats["y-stdev"] == pytest.approx(statistics.pstdev(ys))
    assert GraphYStat(["Entries", "mean", "sigma"])(Graph()) == {
        "Entries": 0,
        "mean": None,
        "sigma": None,
    }
    with pytest.raises(ValueError, match="unknown field"):
        GraphYStat(["y-median"])


# ---------------------------------------------------------------------------------------------
# tables and trees


def test_table_shape_with_cell_attributes() -> None:
    table = Table(["name", "value"])
    table.add_row(["V0", 1.5])
    table.add_row(["V1", math.nan], attr=[None, {"color": "red", "href": "/x"}])
    assert table.to_json() == {
        "columns": ["name", "value"],
        "table": [["V0", 1.5], ["V1", None]],
        "attr": [[{}, {}], [{}, {"color": "red", "href": "/x"}]],
    }
    plain = Table(["a"])
    plain.add_row([1])
    assert plain.to_json() == {"columns": ["a"], "table": [[1]]}  # no attr when none is set


def test_table_rejects_bad_rows() -> None:
    table = Table(["a", "b"])
    with pytest.raises(ValueError, match="row 0 has 3 cells, expected 2"):
        table.add_row([1, 2, 3])
    with pytest.raises(TypeError, match="cell 1"):
        table.add_row([1, {"x": 1}])
    with pytest.raises(ValueError, match="unknown attributes"):
        table.add_row([1, 2], attr=[{"colour": "red"}, None])
    with pytest.raises(ValueError, match="list of 2"):
        table.add_row([1, 2], attr=[None])
    with pytest.raises(TypeError, match="list of cells"):
        table.add_row("ab")
    assert len(table) == 0
    headless = Table()
    headless.add_row([1, 2])
    with pytest.raises(ValueError, match="expected 2"):
        headless.add_row([1])
    assert headless.to_json() == {"table": [[1, 2]]}


def test_tree_set_get_and_attributes() -> None:
    tree = Tree()
    tree.set("PS/V0", 1.5, attr={"color": "red"})
    tree.set("PS/V1", 2.0)
    tree.set("run", 12)
    assert tree.get("PS/V1") == 2.0
    assert tree.to_json() == {
        "tree": {"PS": {"V0": 1.5, "V1": 2.0}, "run": 12},
        "attr": {"PS": {"V0": {"color": "red"}}},
    }
    tree.set("PS/V0", math.inf)  # resets the leaf's attributes too
    assert tree.to_json() == {"tree": {"PS": {"V0": None, "V1": 2.0}, "run": 12}}
    with pytest.raises(ValueError, match="'run' holds a value"):
        tree.set("run/number", 1)
    with pytest.raises(ValueError, match="empty key"):
        tree.set("PS//V0", 1)
    with pytest.raises(KeyError):
        tree.get("PS/V9")
    dotted = Tree(".")
    dotted.set("a.b", "x")
    assert dotted.to_json() == {"tree": {"a": {"b": "x"}}}


# ---------------------------------------------------------------------------------------------
# from_json and JSON safety


def _examples() -> list[DataElement]:
    hist = Histogram(3, -1.5, 1.5)
    hist.fill([0.1, 0.2, -1.0], weight=0.5)
    hist.add_attr("xtitle", "E [keV]")
    hist2 = Histogram2d(2, 0, 1, 2, 0, 1)
    hist2.fill(0.25, 0.75, 3)
    graph = Graph(["x", "y", "z"])
    graph.add_point([1, 2], [3, math.nan], z=[5, 6], x_err=[0.5, None])
    graph.add_stat("fit", "ok")
    table = Table(["a", "b"])
    table.add_row([1, "x"], attr=[{"background": "#eee"}, None])
    tree = Tree()
    tree.set("a/b", [1, 2], attr={"href": "http://127.0.0.1/"})
    return [hist, hist2, graph, table, tree]


@pytest.mark.parametrize("element", _examples(), ids=lambda e: type(e).__name__)
def test_from_json_round_trips(element: DataElement) -> None:
    for source in (element.to_json(), str(element), str(element).encode()):
        rebuilt = DataElement.from_json(source)
        assert type(rebuilt) is type(element)
        assert rebuilt.to_json() == element.to_json()
    assert type(element).from_json(str(element)).to_json() == element.to_json()


def test_from_json_rejects_what_is_not_a_data_object() -> None:
    with pytest.raises(ValueError, match="not a data object"):
        DataElement.from_json({"value": 1})
    with pytest.raises(ValueError, match="not JSON text"):
        DataElement.from_json("{bins")
    with pytest.raises(ValueError, match="JSON object"):
        DataElement.from_json("[1, 2]")
    with pytest.raises(ValueError, match="not a valid Histogram"):
        DataElement.from_json({"bins": {"min": 0, "max": 1}, "counts": [1, "2"]})
    with pytest.raises(ValueError, match="must be below"):
        DataElement.from_json({"bins": {"min": 1, "max": 0}, "counts": [1]})
    with pytest.raises(ValueError, match="counts"):
        Histogram.from_json({"labels": ["x", "y"], "y": [1]})
    with pytest.raises(ValueError, match="x must be a list as long as y"):
        Graph.from_json({"x": [1], "y": [1, 2]})
    with pytest.raises(ValueError, match="expected 2"):
        DataElement.from_json({"table": [[1, 2], [3]]})
    with pytest.raises(ValueError, match="has 1 bins, expected 2"):
        DataElement.from_json(
            {"xbins": {"min": 0, "max": 1}, "ybins": {"min": 0, "max": 1}, "counts": [[1, 2], [3]]}
        )
    with pytest.raises(NotImplementedError, match="graph"):
        Trend.from_json({"y": [1]})


def test_from_json_fills_missing_graph_x_and_keeps_decorations() -> None:
    graph = DataElement.from_json(
        '{"_attr": {"title": "t"}, "_stat": {"n": 2}, "y": [1, null], "labels": ["a", "b"]}'
    )
    assert isinstance(graph, Graph)
    assert graph.to_json() == {
        "_attr": {"title": "t"},
        "_stat": {"n": 2},
        "labels": ["a", "b"],
        "x": [0.0, 1.0],
        "y": [1.0, None],
    }


def test_non_finite_numbers_become_null_everywhere() -> None:
    hist = Histogram(2, 0, 2)
    hist.add_attr("scale", math.nan)
    hist.add_stat("limit", -math.inf)
    hist.add_stat(lambda h: {"ratio": math.inf, "nested": [math.nan, 1.0]})
    assert hist.to_json()["_attr"] == {"scale": None}
    assert hist.to_json()["_stat"] == {"limit": None, "ratio": None, "nested": [None, 1.0]}
    for element in [hist, *_examples()]:
        strict_json(str(element))


def test_attributes_and_statistics_must_be_json() -> None:
    hist = Histogram(2, 0, 2)
    with pytest.raises(TypeError, match="set is not a JSON value"):
        hist.add_attr("tags", {1, 2})
    with pytest.raises(TypeError, match="keys must be strings"):
        hist.add_attr("map", {1: "a"})
    with pytest.raises(TypeError, match="takes"):
        hist.add_stat(3)  # type: ignore[call-overload]
    hist.add_stat(lambda h: [1, 2])  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="not a dict"):
        hist.to_json()


def test_to_json_shares_nothing_with_the_object() -> None:
    hist = Histogram(2, 0, 2)
    record = hist.to_json()
    record["counts"][0] = 99
    assert hist.counts == [0, 0]


def test_numpy_input_is_accepted() -> None:
    np = pytest.importorskip("numpy")
    hist = Histogram(2, 0, 2)
    hist.fill(np.array([0.5, 1.5, 1.5]), weight=np.int64(2))
    assert hist.counts == [2, 4]
    graph = Graph()
    graph.add_point(np.arange(3), np.array([1.0, np.nan, 3.0]))
    graph.add_attr("offset", np.float32(0.5))
    graph.add_attr("n", np.int64(3))
    assert graph.to_json() == {
        "_attr": {"offset": 0.5, "n": 3},
        "labels": ["x", "y"],
        "x": [0.0, 1.0, 2.0],
        "y": [1.0, None, 3.0],
    }


# ---------------------------------------------------------------------------------------------
# trends


def test_mean_trend_bins_values_by_time() -> None:
    trend = Trend(length=3, tick=10, metric="mean", start=1000)
    assert trend.nbins == 1  # length below one tick is one bin, as in SlowPy
    trend = Trend(length=30, tick=10, metric="mean", start=1000)
    for t, v in [(1000, 1.0), (1005, 3.0), (1009.999, 5.0), (1021, 7.0), (1035, 0.0)]:
        trend.fill(t, v)
    # bins 0 (1000..1010): 1, 3, 5; bin 1: empty; bin 2: 7; bin 3 is being filled
    mean = 3.0
    sd = math.sqrt(((1 - mean) ** 2 + 0 + (5 - mean) ** 2) / 3)
    assert trend.to_json() == {
        "_attr": {"start_timestamp": 1000},
        "labels": ["lapse", "mean"],
        "x": [5.0, 15.0, 25.0],
        "y": [3.0, None, 7.0],
        "y_err": [pytest.approx(sd / math.sqrt(3)), None, 0.0],
        "y_min": [1.0, None, 7.0],
        "y_max": [5.0, None, 7.0],
    }
    strict_json(str(trend))


@pytest.mark.parametrize(
    ("metric", "y", "y_err"),
    [
        ("counts", [3.0, 0.0, 1.0], [math.sqrt(3), 0.0, 1.0]),
        ("Rate", [1.5, 0.0, 0.5], [math.sqrt(3) / 2, 0.0, 0.5]),
        ("sum", [9.0, 0.0, 10.0], None),
        ("min", [1.0, None, 10.0], None),
        ("max", [5.0, None, 10.0], None),
        ("stdev", [pytest.approx(statistics.pstdev([1, 3, 5])), None, 0.0], None),
    ],
)
def test_trend_metrics(metric: str, y: list[Any], y_err: list[float] | None) -> None:
    trend = Trend(length=6, tick=2, metric=metric, start=0)
    for t, v in [(0.0, 1.0), (1.0, 3.0), (1.5, 5.0), (4.2, 10.0), (6.0, 2.0)]:
        trend.fill(t, v)
    record = trend.to_json()
    assert record["labels"] == ["lapse", metric]
    assert record["x"] == [1.0, 3.0, 5.0]
    assert record["y"] == y
    assert record.get("y_err") == (None if y_err is None else pytest.approx(y_err))


def test_trend_counts_without_values_and_with_weights() -> None:
    trend = Trend(length=4, tick=1, metric="count", start=0)
    trend.fill(0.5)
    trend.fill(0.7, weight=3)
    trend.fill(1.5, value=math.nan)  # counted, but not a value
    trend.fill(3.5)
    assert trend.to_json()["y"] == [4.0, 1.0, 0.0]
    mean = Trend(length=4, tick=1, metric="mean", start=0)
    mean.fill(0.5, 2.0, weight=3)
    mean.fill(0.6, 6.0)
    mean.fill(0.7, math.nan)
    mean.fill(2.0)
    assert mean.to_json()["y"] == [3.0, None]  # (3*2 + 6) / 4


def test_trend_window_slides_and_drops_what_cannot_be_recorded() -> None:
    trend = RateTrend(length=3, tick=1, start=100)
    for t in [100.5, 101.5, 101.6, 102.5, 103.5, 104.5]:
        trend.fill(t)
    assert trend.to_json()["x"] == [1.5, 2.5, 3.5]  # bin 0 has left the window
    assert trend.to_json()["y"] == [2.0, 1.0, 1.0]
    trend.fill(99.0)  # before start
    trend.fill(100.5)  # bin 0: gone from the ring
    trend.fill(104.9, weight=math.nan)
    assert trend.dropped == 3
    assert trend.to_json()["y"] == [2.0, 1.0, 1.0]
    trend.fill(101.2)  # late, but still in the window
    assert trend.to_json()["y"] == [3.0, 1.0, 1.0]
    trend.fill(200.0)  # a jump longer than the window
    assert trend.to_json()["x"] == [97.5, 98.5, 99.5]
    assert trend.to_json()["y"] == [0.0, 0.0, 0.0]


def test_trend_evolve_shows_quiet_bins() -> None:
    trend = RateTrend(length=10, tick=1, start=0)
    trend.fill(0.5)
    assert trend.to_json()["y"] == []  # the only bin is still being filled
    trend.evolve(3.2)
    assert trend.to_json()["y"] == [1.0, 0.0, 0.0]
    trend.evolve(3.2, complete=True)
    assert trend.to_json()["y"] == [1.0, 0.0, 0.0, 0.0]
    trend.evolve(1.0)  # the past changes nothing
    assert len(trend.to_json()["y"]) == 4


def test_trend_flush_and_clear() -> None:
    trend = Trend(length=10, tick=1, metric="count", start=0)
    for t in [0.5, 1.5, 2.5]:
        trend.fill(t)
    trend.add_stat("note", "x")
    ts = trend.timeseries(flush=True)
    assert ts.fields["x"] == [1.0, 1.0]
    assert trend.to_json()["y"] == []
    trend.fill(1.5)  # a flushed bin
    assert trend.dropped == 1
    trend.fill(3.5)
    assert trend.to_json()["y"] == [1.0]
    trend.clear()
    assert trend.dropped == 0
    trend.fill(4.5)
    assert trend.to_json() == {  # the fixed statistics went with the data
        "_attr": {"start_timestamp": 0},
        "labels": ["lapse", "count"],
        "x": [3.5],  # the bin being filled when cleared, now emptied
        "y": [0.0],
        "y_err": [0.0],
    }


def test_trend_construction_checks() -> None:
    with pytest.raises(ValueError, match="unknown metric 'median'"):
        Trend(metric="median")
    with pytest.raises(ValueError, match="positive"):
        Trend(length=10, tick=0)
    with pytest.raises(ValueError, match="positive"):
        Trend(length=-1)
    with pytest.raises(ValueError, match="finite"):
        Trend(start=math.nan)
    trend = Trend(length=60, tick=0.1, start=0)
    assert trend.nbins == 600


def test_trend_timeseries_shape() -> None:
    trend = Trend(length=30, tick=10, metric="mean", start=1000)
    for t, v in [(1001, 1.0), (1002, 3.0), (1025, 4.0), (1031, 0.0)]:
        trend.fill(t, v)
    ts = trend.timeseries()
    assert ts.name is None
    assert ts.to_json() == {
        "start": 1000,
        "length": 30,
        "t": [5.0, 15.0, 25.0],
        "x": [2.0, None, 4.0],
        "x_err": [pytest.approx(1.0 / math.sqrt(2)), None, 0.0],
        "x_min": [1.0, None, 4.0],
        "x_max": [3.0, None, 4.0],
    }
    assert list(trend.timeseries("v").fields) == ["v", "v_err", "v_min", "v_max"]


def test_rate_trend_time_series_is_named_and_returns_each_bin_once() -> None:
    trend = RateTrend(length=300, tick=10, start=1000)
    for t in [1001, 1002, 1011, 1025]:
        trend.fill(t)
    first = trend.time_series("test_rate")
    assert first.name == "test_rate"
    assert first.to_json() == {
        "start": 1000,
        "length": 20,
        "t": [5.0, 15.0],
        "x": [0.2, 0.1],
        "x_err": [pytest.approx(math.sqrt(2) / 10), 0.1],
    }
    assert list(first.points()) == [
        (1005.0, {"x": 0.2, "x_err": pytest.approx(math.sqrt(2) / 10)}),
        (1015.0, {"x": 0.1, "x_err": 0.1}),
    ]
    assert len(trend.time_series("test_rate")) == 0  # nothing completed since
    trend.fill(1041)
    again = trend.time_series("test_rate")
    assert (again.start, again.t, again.fields["x"]) == (1020, [5.0, 15.0], [0.1, 0.0])
    whole = trend.time_series("test_rate", new_only=False)
    assert whole.t == [5.0, 15.0, 25.0, 35.0]
    assert trend.to_json()["y"] == [0.2, 0.1, 0.1, 0.0]  # the trend's window is untouched


# ---------------------------------------------------------------------------------------------
# time series


def test_time_series_shape_and_writes() -> None:
    ts = TimeSeries(fields=["a", "b"], start=1700000000, length=60)
    ts.write({"a": 1.5}, t=10)
    ts.write([2.5, "on"], t=20.5)
    ts.write(3, t=30)
    ts.write([math.nan, None], t=40)
    assert ts.to_json() == {
        "start": 1700000000,
        "length": 60,
        "t": [10.0, 20.5, 30.0, 40.0],
        "a": [1.5, 2.5, 3, None],
        "b": [None, "on", None, None],
    }
    assert list(ts.points()) == [
        (1700000010.0, {"a": 1.5}),
        (1700000020.5, {"a": 2.5, "b": "on"}),
        (1700000030.0, {"a": 3}),
    ]
    assert len(ts) == 4
    strict_json(str(ts))


def test_time_series_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    ts = TimeSeries()
    assert ts.to_json() == {"start": 0, "length": 0, "t": [], "x": []}
    monkeypatch.setattr(time, "time", lambda: 1234.5)
    ts.write(7)  # t = now - start
    named = TimeSeries(start=1000, name="pressure")
    named.write(1.0)
    named.write(2.0, t=300)
    assert ts.to_json() == {"start": 0, "length": 1235.5, "t": [1234.5], "x": [7]}
    assert named.name == "pressure"
    assert named.t == [234.5, 300.0]
    assert named.length == 301.0  # max(t) + 1, as SlowPy
    assert "pressure" in repr(named)


def test_time_series_freezes_objects_when_written() -> None:
    hist = Histogram(2, 0, 2)
    ts = TimeSeries(fields=["h"], start=0)
    hist.fill(0.5)
    ts.write(hist, t=1)
    hist.fill(1.5)
    ts.write({"h": hist}, t=2)
    ts.write({"h": {"mime": "image/png", "id": "file:a.png"}}, t=3)
    assert ts.to_json()["h"] == [
        {"bins": {"min": 0, "max": 2}, "counts": [1, 0]},
        {"bins": {"min": 0, "max": 2}, "counts": [1, 1]},
        {"mime": "image/png", "id": "file:a.png"},
    ]
    values = [fields["h"] for _, fields in ts.points()]
    assert all(isinstance(v, DataElement) for v in values)
    assert str(values[0]) == '{"bins":{"min":0,"max":2},"counts":[1,0]}'


def test_time_series_rejects_bad_input() -> None:
    ts = TimeSeries(fields=["a"])
    with pytest.raises(ValueError, match="unknown fields"):
        ts.write({"b": 1}, t=0)
    with pytest.raises(ValueError, match="2 values for 1 fields"):
        ts.write([1, 2], t=0)
    with pytest.raises(TypeError, match="not a list"):
        ts.write({"a": [1, 2]}, t=0)
    with pytest.raises(ValueError, match="finite"):
        ts.write(1, t=math.inf)
    with pytest.raises(TypeError, match="set is not a JSON value"):
        ts.write({1}, t=0)
    assert len(ts) == 0
    assert ts.fields == {"a": []}
    with pytest.raises(ValueError, match="cannot be a field name"):
        TimeSeries(fields=["t"])
    with pytest.raises(ValueError, match="unique"):
        TimeSeries(fields=["a", "a"])
    with pytest.raises(TypeError, match="non-empty list"):
        TimeSeries(fields="a")
    with pytest.raises(TypeError, match="name"):
        TimeSeries(name="")
    with pytest.raises(ValueError, match="negative"):
        TimeSeries(length=-1)


# ---------------------------------------------------------------------------------------------
# layering


def test_importing_the_objects_loads_no_heavy_or_server_modules() -> None:
    modules = ["_element", "_histogram", "_graph", "_trend", "_timeseries", "_table"]
    script = (
        "import sys, slowdash_stores\n"
        + "".join(f"import slowdash_stores.{m}\n" for m in modules)
        + "print(' '.join(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = {name.split(".")[0] for name in done.stdout.split()}
    assert "slowdash_stores" in loaded
    forbidden = {"numpy", "matplotlib", "quart", "quart_trio", "hypercorn", "slowdash_trio"}
    assert not loaded & forbidden


def test_a_subclass_in_slowpys_style_keeps_attributes_and_statistics() -> None:
    class Counter(DataElement):
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def to_json(self) -> dict[str, Any]:
            return {**super().to_json(), "tree": {"n": self.n}}

    counter = Counter()
    counter.add_attr("title", "events")
    counter.add_stat(lambda c: {"double": 2 * c.n})
    counter.n = 3
    assert counter.to_json() == {
        "_attr": {"title": "events"},
        "_stat": {"double": 6},
        "tree": {"n": 3},
    }
    assert str(counter) == '{"_attr":{"title":"events"},"_stat":{"double":6},"tree":{"n":3}}'
