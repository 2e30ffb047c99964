"""DataStore_CSV and DataStore_TextDump: round trips, quoting, update, bad input."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
import trio

from slowdash_stores._csv import DataStore_CSV, DataStore_TextDump
from slowdash_stores._errors import (
    InvalidDataError,
    InvalidNameError,
    InvalidURLError,
    StoreClosedError,
    StoreError,
    WrongThreadError,
)
from slowdash_stores._factory import create_datastore_from_url
from slowdash_stores._graph import Graph
from slowdash_stores._histogram import Histogram
from slowdash_stores._timeseries import TimeSeries

T0 = 1_700_000_000.0


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"csv:///{tmp_path}/store.d"


def read(url: str, table: str = "data") -> list[list[str]]:
    path = Path(url[len("csv:///") :]) / f"{table}.csv"
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def test_round_trip(url: str) -> None:
    hist = Histogram(2, 0, 2)
    hist.fill(0.5)
    graph = Graph()
    graph.add_point(1, 2)
    series = TimeSeries(start=T0, name="rate", fields=["x", "x_err"])
    series.write({"x": 1.0, "x_err": 0.1}, t=1)
    with DataStore_CSV(url, "data") as store:
        store.append(1.5, tag="a", timestamp=T0 + 0.9)
        store.append({"x": 2, "y": "on", "z": None}, tag="d", timestamp=T0)
        store.append(hist, tag="hist", timestamp=T0)
        store.append(graph, tag="graph", timestamp=T0)
        store.append(series)
        store.append(True, tag="flag", timestamp=T0)
    stored = read(url)
    assert stored[0] == ["timestamp", "channel", "value"]
    assert stored[1:] == [
        [str(int(T0)), "a", "1.5"],  # whole seconds, as SlowPy writes
        [str(int(T0)), "d:x", "2"],
        [str(int(T0)), "d:y", "on"],
        [str(int(T0)), "hist", str(hist)],
        [str(int(T0)), "graph", str(graph)],
        [str(int(T0) + 1), "rate", "1.0"],
        [str(int(T0) + 1), "rate:x_err", "0.1"],
        [str(int(T0)), "flag", "True"],
    ]
    assert json.loads(stored[4][2]) == hist.to_json()


def test_quoting_follows_rfc4180(url: str) -> None:
    awkward = 'a,b "quoted"\nnext line'
    with DataStore_CSV(url, "data") as store:
        store.append(awkward, tag="text", timestamp=T0)
    raw = (Path(url[len("csv:///") :]) / "data.csv").read_text()
    assert raw == 'timestamp,channel,value\n1700000000,text,"a,b ""quoted""\nnext line"\n'
    assert read(url)[1] == ["1700000000", "text", awkward]


def test_appending_to_an_existing_file_and_recreate(url: str) -> None:
    with DataStore_CSV(url, "data") as store:
        store.append(1.0, tag="a", timestamp=T0)
    with DataStore_CSV(url, "data") as store:
        store.append(2.0, tag="a", timestamp=T0 + 1)
    assert len(read(url)) == 3  # one header
    with DataStore_CSV(url, "data", recreate=True) as store:
        store.append(3.0, tag="a", timestamp=T0 + 2)
    assert read(url) == [["timestamp", "channel", "value"], [str(int(T0) + 2), "a", "3.0"]]


def test_update_rewrites_the_channel(url: str) -> None:
    with DataStore_CSV(url, "data", time_decimals=3) as store:
        store.append(1.0, tag="a", timestamp=T0)
        store.append(2.0, tag="b", timestamp=T0)
        store.update(3.0, tag="a", timestamp=T0 + 1.5)
        store.append(4.0, tag="a", timestamp=T0 + 2)  # the file handle follows the new file
        store.update({"a": 5.0}, timestamp=T0 + 3)
    assert read(url) == [
        ["timestamp", "channel", "value"],
        ["1700000000.000", "b", "2.0"],
        ["1700000003.000", "a", "5.0"],
    ]
    leftovers = [name for name in os.listdir(url[len("csv:///") :]) if name != "data.csv"]
    assert leftovers == []


def test_durable_and_another(url: str) -> None:
    with DataStore_CSV(url, "data", durable=True) as store:
        store.append(1.0, tag="a", timestamp=T0)
        store.update(2.0, tag="a", timestamp=T0 + 1)
        other = store.another("other")
        other.append(3.0, tag="b", timestamp=T0)
        assert other.durable
        other.close()
    assert read(url)[1:] == [[str(int(T0) + 1), "a", "2.0"]]
    assert read(url, "other")[1:] == [[str(int(T0)), "b", "3.0"]]


def test_bad_input_writes_nothing(url: str) -> None:
    with DataStore_CSV(url, "data") as store:
        store.append(1.0, tag="a", timestamp=T0)
        with pytest.raises(InvalidDataError):
            store.append(1.0)
        with pytest.raises(InvalidNameError):
            store.append({"ok": 1.0, "bad,name": 2.0}, timestamp=T0)
        with pytest.raises(InvalidNameError):
            store.append(1.0, tag="a\nb", timestamp=T0)
        with pytest.raises(InvalidDataError, match="bytes"):
            store.append({"ok": 1.0, "b": b"\x00"}, timestamp=T0)
    assert read(url)[1:] == [[str(int(T0)), "a", "1.0"]]


@pytest.mark.parametrize("table", ["../escape", "a/b", "x.csv", "", "select"])
def test_bad_table_names(url: str, table: str) -> None:
    with pytest.raises(InvalidNameError):
        DataStore_CSV(url, table)


def test_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with DataStore_CSV("csv:///relative.d", "data") as store:
        store.append(1.0, tag="a")
    assert (tmp_path / "relative.d" / "data.csv").exists()
    with DataStore_CSV(f"csv:///{tmp_path}/absolute.d", "data") as store:  # csv:////abs
        store.append(1.0, tag="a")
    assert (tmp_path / "absolute.d" / "data.csv").exists()
    for bad in ("csv://x", "csv:///", "sqlite:///x"):
        with pytest.raises(InvalidURLError):
            DataStore_CSV(bad, "data")
    with pytest.raises(ValueError, match="time_decimals"):
        DataStore_CSV("csv:///x.d", "data", time_decimals=12)
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="directory"):
        DataStore_CSV(f"csv:///{tmp_path}/file/sub", "data")


def test_closed(url: str) -> None:
    store = DataStore_CSV(url, "data")
    store.close()
    store.close()
    with pytest.raises(StoreClosedError):
        store.append(1.0, tag="a")
    with pytest.raises(StoreClosedError):
        store._write_rows([(T0, "a", 1.0)], False)


async def test_async(url: str) -> None:
    store = DataStore_CSV(url, "data")
    with pytest.raises(WrongThreadError):
        store.append(1.0, tag="a")
    await store.aio_append(1.0, tag="a", timestamp=T0)
    await store.aio_update(2.0, tag="a", timestamp=T0 + 1)
    await store.aio_close()
    assert read(url)[1:] == [[str(int(T0) + 1), "a", "2.0"]]
    await trio.lowlevel.checkpoint()


def test_text_dump(capsys: pytest.CaptureFixture[str]) -> None:
    store = create_datastore_from_url("dump:///")
    store.append({"a": 1.5, "b": "x,y"}, tag="d", timestamp=T0)
    store.update(2, tag="c", timestamp=T0)
    store.close()
    assert capsys.readouterr().out == (
        '1700000000.000,d:a,1.5\n1700000000.000,d:b,"x,y"\n1700000000.000,c,2\n'
    )
    buffer = io.StringIO()
    dump = DataStore_TextDump(buffer, time_decimals=0)
    dump.append(1.0, tag="a", timestamp=T0)
    dump.close()
    with pytest.raises(StoreClosedError):
        dump.append(1.0, tag="a", timestamp=T0)
    assert buffer.getvalue() == "1700000000,a,1.0\n"
    assert not buffer.closed


def test_factory_csv(url: str) -> None:
    store = create_datastore_from_url(url, table="t", recreate=True, time_decimals=1)
    assert isinstance(store, DataStore_CSV)
    store.append(1.0, tag="a", timestamp=T0 + 0.25)
    store.close()
    assert read(url, "t")[1:] == [["1700000000.2", "a", "1.0"]]
