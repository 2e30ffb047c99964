"""The pure parts of data requests: bucket geometry, parameters, reducers, schema descriptors
and data_source entries; every bad input is refused with a message that says what is wrong."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import pytest

from slowdash_trio._sources import (
    QueryError,
    SchemaError,
    SourceConfigError,
    build_source,
    make_grid,
    parse_query,
    parse_schema,
    table_entries,
    view_entries,
)
from slowdash_trio._sources._query import (
    MAX_BUCKETS,
    REDUCER_ALIASES,
    envelope_keys,
    reduce_values,
    wants_prior,
)
from slowdash_trio._sources._schema import check_channel_name, quote_ident

NOW = 1_700_000_000.0

# ----------------------------------------------------------------------------------------------
# bucket geometry


def test_grid_of_a_length_that_is_a_multiple_of_the_interval() -> None:
    grid = make_grid(600, 1000, 100)
    assert (grid.start, grid.interval, grid.count) == (400, 100, 6)
    assert grid.end == 1000
    assert grid.centres() == [50, 150, 250, 350, 450, 550]
    assert grid.edges() == [400, 500, 600, 700, 800, 900, 1000]


def test_grid_gets_one_more_leading_bucket_when_the_length_is_not_a_multiple() -> None:
    grid = make_grid(650, 1000, 100)
    assert (grid.start, grid.count) == (300, 7)  # 6 full buckets end at `to`, one in front
    assert grid.end == 1000
    short = make_grid(50, 1000, 100)  # a window shorter than one bucket: one bucket
    assert (short.start, short.count) == (900, 1)


def test_bucket_index_puts_edges_in_the_later_bucket() -> None:
    grid = make_grid(600, 1000, 100)
    assert grid.index(400) == 0
    assert grid.index(500) == 1  # exactly on an edge: the bucket that starts there
    assert grid.index(499.999) == 0
    assert grid.index(399.999) == -1  # before the grid
    assert grid.index(1000) == 6  # `to` itself is outside (the window is [start, to))


def test_rounding_does_not_make_a_spurious_bucket() -> None:
    grid = make_grid(0.3, 10, 0.1)  # 0.3 / 0.1 is 2.9999999999999996 in floating point
    assert grid.count == 3


def test_too_many_buckets_is_a_query_error() -> None:
    assert make_grid(MAX_BUCKETS, 0, 1).count == MAX_BUCKETS
    with pytest.raises(QueryError, match=r"makes 100001 buckets; at most 100000"):
        make_grid(MAX_BUCKETS + 1, 0, 1)


def test_a_subnormal_interval_is_a_query_error_too() -> None:
    with pytest.raises(QueryError):
        make_grid(3600, NOW, 5e-324)


# ----------------------------------------------------------------------------------------------
# parameters


def test_to_at_or_below_zero_is_relative_to_now() -> None:
    assert parse_query(["a"], to=0, now=NOW).to == NOW
    assert parse_query(["a"], to=-100, now=NOW).to == NOW - 100
    assert parse_query(["a"], to=5, now=NOW).to == 5  # positive: absolute
    query = parse_query(["a", "b"], length=60, to=-30, now=NOW)
    assert query.channels == ("a", "b")
    assert (query.begin, query.to, query.length) == (NOW - 90, NOW - 30, 60)


def test_resample_below_zero_is_raw_zero_is_automatic() -> None:
    assert parse_query(["a"], resample=-1, now=NOW).resample is None
    assert parse_query(["a"], resample=-5, now=NOW).resample is None
    assert parse_query(["a"], resample=0, now=NOW).resample == 0
    assert parse_query(["a"], resample=60, now=NOW).resample == 60


@pytest.mark.parametrize(("alias", "canonical"), sorted(REDUCER_ALIASES.items()))
def test_reducer_aliases(alias: str, canonical: str) -> None:
    assert parse_query(["a"], reducer=alias, now=NOW).reducer == canonical


def test_every_documented_reducer_name_is_taken() -> None:
    names = [
        "first",
        "last",
        "mean",
        "median",
        "sum",
        "min",
        "max",
        "count",
        "std",
        "sd",
        "stdev",
        "rms",
        "sigma",
        "sem",
        "err",
    ]
    assert sorted(REDUCER_ALIASES) == sorted(names)
    assert {REDUCER_ALIASES[n] for n in ("std", "sd", "stdev", "rms", "sigma")} == {"std"}
    assert {REDUCER_ALIASES[n] for n in ("sem", "err")} == {"sem"}


def test_align_moves_to_up_to_a_multiple_of_resample() -> None:
    assert parse_query(["a"], to=1005, resample=60, align=1, now=NOW).to == 1020
    assert parse_query(["a"], to=1020, resample=60, align=1, now=NOW).to == 1020
    assert parse_query(["a"], to=1005, resample=60, align=0, now=NOW).to == 1005
    assert parse_query(["a"], to=1005, align=1, now=NOW).to == 1005  # raw: nothing to align
    live = parse_query(["a"], to=0, resample=600, align=1, now=NOW + 1)
    assert live.to == math.ceil((NOW + 1) / 600) * 600


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"length": -1}, "'length': must be positive"),
        ({"length": 0}, "'length': must be positive"),
        ({"length": 1e30}, "'length': must be positive and at most"),
        ({"length": math.nan}, "'length': must be a finite number"),
        ({"to": math.nan}, "'to': must be a finite number"),
        ({"to": math.inf}, "'to': must be a finite number"),
        ({"resample": math.nan}, "'resample': must be a finite number"),
        ({"resample": 1e-9}, "buckets; at most 100000"),
        ({"length": 1e6, "resample": 1}, "makes 1000000 buckets"),
        ({"reducer": "bogus"}, "unknown reducer 'bogus'"),
        ({"reducer": "MEAN"}, "unknown reducer 'MEAN'"),
        ({"filler": "zero"}, "'filler': only 'fillna'"),
        ({"envelope": 7}, "'envelope': 0, 1 or 2, not 7"),
        ({"envelope": -1}, "'envelope': 0, 1 or 2"),
        ({"prior_data": 3}, "'prior_data': 0, 1 or 2, not 3"),
        ({"align": 2}, "'align': 0 or 1, not 2"),
    ],
)
def test_bad_parameters_are_query_errors_naming_the_parameter(
    params: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(["a"], now=NOW, **params)
    assert fragment in str(info.value)


# ----------------------------------------------------------------------------------------------
# reducers


def test_reducers_use_finite_numbers_only() -> None:
    junk: list[Any] = [None, math.nan, math.inf, -math.inf, "7", True, {"counts": [1]}]
    values: list[Any] = [junk[0], 2.0, *junk[1:4], 4, *junk[4:], 3.0, None]
    assert reduce_values(values, "first") == 2.0
    assert reduce_values(values, "last") == 3.0
    assert reduce_values(values, "count") == 3
    assert reduce_values(values, "sum") == 9.0
    assert reduce_values(values, "mean") == 3.0
    assert reduce_values(values, "median") == 3.0
    assert reduce_values(values, "min") == 2.0
    assert reduce_values(values, "max") == 4.0
    assert reduce_values(values, "std") == pytest.approx(math.sqrt(2 / 3), rel=1e-12)
    assert reduce_values(values, "sem") == pytest.approx(1 / math.sqrt(3), rel=1e-12)


def test_empty_bucket_is_null_except_count() -> None:
    for reducer in set(REDUCER_ALIASES.values()):
        expected = 0 if reducer == "count" else None
        assert reduce_values([], reducer) == expected, reducer
        assert reduce_values([None, "x", math.nan], reducer) == expected, reducer


def test_std_is_population_and_sem_is_sample_over_root_n() -> None:
    data = [1.0, 2.0, 3.0, 4.0]
    assert reduce_values(data, "std") == pytest.approx(statistics.pstdev(data), rel=1e-15)
    assert reduce_values(data, "sem") == pytest.approx(statistics.stdev(data) / 2, rel=1e-15)
    assert reduce_values([5.0], "std") == 0.0
    assert reduce_values([5.0], "sem") is None  # below two values


def test_median_of_even_and_odd_counts() -> None:
    assert reduce_values([3, 1, 2], "median") == 2
    assert reduce_values([4, 1, 3, 2], "median") == 2.5


def test_unknown_reducer_is_a_query_error() -> None:
    with pytest.raises(QueryError, match="unknown reducer 'avg'"):
        reduce_values([1.0], "avg")


@pytest.mark.parametrize(
    ("reducer", "envelope", "keys"),
    [
        ("mean", 0, []),
        ("mean", 1, ["x_min", "x_max"]),
        ("mean", 2, ["x_min", "x_max", "x_n", "x_err"]),
        ("last", 2, ["x_min", "x_max", "x_n"]),
        ("median", 1, ["x_min", "x_max"]),
        ("sum", 1, []),
        ("sum", 2, ["x_n"]),
        ("count", 2, []),
        ("std", 2, ["x_n"]),
    ],
)
def test_envelope_keys(reducer: str, envelope: int, keys: list[str]) -> None:
    query = parse_query(["a"], resample=10, reducer=reducer, envelope=envelope, now=NOW)
    assert envelope_keys(query) == keys


def test_wants_prior() -> None:
    def q(prior: int) -> Any:
        return parse_query(["a"], prior_data=prior, now=NOW)

    empty: dict[str, Any] = {"t": [1.0], "x": [None]}
    full: dict[str, Any] = {"t": [1.0], "x": [1.0]}
    assert not wants_prior(q(0), None)
    assert wants_prior(q(1), None) and wants_prior(q(1), empty)
    assert not wants_prior(q(1), full)
    assert wants_prior(q(2), full)


# ----------------------------------------------------------------------------------------------
# schema descriptors


def test_long_schema() -> None:
    schema = parse_schema("data[channel]@timestamp(unix)=value")
    assert (schema.table, schema.tag, schema.time, schema.time_type) == (
        "data",
        "channel",
        "timestamp",
        "unix",
    )
    assert [f.name for f in schema.fields] == ["value"]
    assert schema.default_field == "value"
    assert schema.flags == ()


def test_spaces_options_flags_and_quotes() -> None:
    schema = parse_schema(
        " data [ channel , flag1,flag2 ] @ ts ( with  Time Zone ) "
        "= raw , cal( default ), n(type=INT)"
    )
    assert schema.flags == ("flag1", "flag2")
    assert schema.time_type == "aware"
    assert [f.name for f in schema.fields] == ["raw", "cal", "n"]
    assert schema.default_field == "cal"
    assert schema.field("n") is not None and schema.field("n").type == "int"  # type: ignore[union-attr]
    assert schema.field("nope") is None
    quoted = parse_schema("'my table'[\"tag col\"]@'t,1'='v:x'")
    assert (quoted.table, quoted.tag, quoted.time) == ("my table", "tag col", "t,1")
    assert quoted.default_field == "v:x"


@pytest.mark.parametrize(
    ("spelled", "kind"),
    [
        ("unix", "unix"),
        ("UNIX", "unix"),
        ("with time zone", "aware"),
        ("utc", "aware"),
        ("GMT", "aware"),
        ("aware", "aware"),
        ("without time zone", "naive"),
        ("local", "naive"),
        ("naive", "naive"),
        ("unspecified utc", "unspecified_utc"),
        ("Unspecified   UTC", "unspecified_utc"),
    ],
)
def test_time_types(spelled: str, kind: str) -> None:
    assert parse_schema(f"data[ch]@t({spelled})=v").time_type == kind


def test_parts_are_optional() -> None:
    wide = parse_schema("run@TimeStamp(unix)=a,b")
    assert wide.tag is None and wide.default_field == "a"
    bare = parse_schema("data[channel]@timestamp")
    assert bare.fields == () and bare.default_field is None and bare.time_type is None
    assert parse_schema("data").table == "data"
    assert parse_schema("").table is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("data[channel@timestamp=value", "expected ']', found '@'"),
        ("data[channel]@timestamp(bogus)=value", "unknown time type 'bogus'"),
        ("data[channel]@timestamp(unix=value", "unclosed '(' after the time column"),
        ("data[]@t=v", "expected a tag column (a name), found ']'"),
        ("data[channel]@=v", "expected a time column (a name), found '='"),
        ("data=v,v", "a field is listed twice"),
        ("data=a(default),b(default)", "more than one field is marked default"),
        ("data[channel]@t=channel", "the tag and time columns cannot also be fields"),
        ("data=v(frob)", "unknown field option 'frob'"),
        ("data=v(type)", "expected '=', found ')'"),
        ("data='unclosed", "unclosed quote in field name"),
        ("data=''", "empty field name"),
        ("1data", "expected a table name (a name), found '1'"),
        ("data=v extra", "unexpected 'e'"),
        ("data=v,", "expected a field name (a name), found the end"),
        ("data;DROP TABLE x", "unexpected ';'"),
        ("data[channel]@t=v)", "unexpected ')'"),
    ],
)
def test_malformed_descriptors_say_what_and_where(text: str, fragment: str) -> None:
    with pytest.raises(SchemaError) as info:
        parse_schema(text)
    message = str(info.value)
    assert fragment in message
    assert repr(text) in message  # the descriptor is quoted
    assert "(at character " in message


def test_a_descriptor_is_a_string() -> None:
    with pytest.raises(SchemaError, match="a schema descriptor is a string, not int"):
        parse_schema(5)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["a", "A.b_c-d:e", "x" * 200, "0", "sys:cpu:0"])
def test_good_channel_names(name: str) -> None:
    assert check_channel_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "a b", "a'b", 'a"b', "a/b", "a,b", "é", "x" * 201, "a;--", "a\x00", "a\nb", "(a)"],
)
def test_bad_channel_names_are_query_errors(name: str) -> None:
    with pytest.raises(QueryError, match="bad channel name") as info:
        check_channel_name(name)
    assert len(str(info.value)) < 200  # long names are not echoed in full


def test_quote_ident() -> None:
    assert quote_ident('a"b') == '"a""b"'
    assert quote_ident("x; DROP TABLE t") == '"x; DROP TABLE t"'
    with pytest.raises(SchemaError, match="NUL"):
        quote_ident("a\x00")


# ----------------------------------------------------------------------------------------------
# data_source entries


def test_table_entries_in_every_spelling() -> None:
    entries = table_entries(
        {
            "time_series": "data[channel]@timestamp(unix)=value",
            "object": [{"schema": "current[channel]=value", "suffix": ".now"}],
            "object_time_series": {
                "schema": "objs[channel]@timestamp(unix)=value",
                "tags": {"list": ["h1", "h2"]},
            },
        }
    )
    assert [(e.kind, e.schema.table, e.suffix, e.tags) for e in entries] == [
        ("time_series", "data", "", None),
        ("object", "current", ".now", None),
        ("object_time_series", "objs", "", ("h1", "h2")),
    ]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"time_series": {"schema": 5}}, "time_series[0]: needs 'schema: TABLE[TAG]@TIME=FIELDS'"),
        ({"time_series": [{}]}, "time_series[0]: needs 'schema:"),
        ({"time_series": ["a@t=v", 7]}, "time_series[1]: needs 'schema:"),
        ({"time_series": "data[ch@t=v"}, "time_series[0]: schema 'data[ch@t=v': expected ']'"),
        ({"time_series": "[channel]@t=v"}, "names no table"),
        ({"time_series": "data[channel]=v"}, "needs a time column (@TIME)"),
        ({"object_time_series": "objs[channel]"}, "needs a time column"),
        ({"time_series": {"schema": "d@t=v", "tags": ["a"]}}, "tags: a mapping"),
        ({"time_series": {"schema": "d@t=v", "tags": {"list": "a"}}}, "tags.list: a list"),
        ({"time_series": {"schema": "d@t=v", "tags": {"list": [1]}}}, "tags.list: a list"),
        ({"time_series": {"schema": "d@t=v", "tags": {"sql": 5}}}, "tags.sql: an SQL SELECT"),
        ({"time_series": {"schema": "d@t=v", "suffix": "a b"}}, "suffix: letters, digits"),
        ({"time_series": {"schema": "d@t=v", "suffix": 5}}, "suffix: letters, digits"),
    ],
)
def test_bad_table_entries_are_refused(params: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SourceConfigError) as info:
        table_entries(params)
    assert fragment in str(info.value)


def test_object_entries_need_no_time_column() -> None:
    (entry,) = table_entries({"object": "current[channel]=value"})
    assert entry.schema.time is None


@pytest.mark.parametrize(
    ("view", "fragment"),
    [
        ({"name": "v"}, "view[0]: needs 'name:' and 'sql:'"),
        ({"sql": "SELECT 1"}, "view[0]: needs 'name:' and 'sql:'"),
        ("SELECT 1", "view[0]: needs"),
        ({"name": "a b", "sql": "SELECT 1"}, "view[0].name: 'a b': letters"),
        ({"name": "a/b", "sql": "SELECT 1"}, "view[0].name"),
    ],
)
def test_bad_views_are_refused(view: Any, fragment: str) -> None:
    with pytest.raises(SourceConfigError) as info:
        view_entries({"view": view})
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"type": "mongodb"}, "unknown data source type 'mongodb'"),
        ({"url": "influxdb2://x"}, "unknown data source type 'influxdb2'"),
        ({}, "needs 'type:' or a 'url:' with a scheme"),
        ({"url": "data.db"}, "needs 'type:' or a 'url:' with a scheme"),
        ({"type": "sqlite", "parameters": [1]}, "parameters: must be a mapping"),
        ({"type": "sqlite"}, "needs 'url: sqlite:///NAME' or 'file: NAME'"),
        ({"type": "sqlite", "url": "postgresql://x/y"}, "an SQLite source takes sqlite:///NAME"),
        ({"url": "sqlite:///"}, "names no file"),
        ({"url": "sqlite:///d", "cache": "yes"}, "cache: true or false"),
        ({"url": "sqlite:///d", "time_series": "d[c@t"}, "time_series[0]: schema"),
        ({"url": "sqlite:///d", "view": {"name": "v"}}, "view[0]: needs"),
    ],
)
def test_bad_source_entries_are_refused(
    entry: dict[str, Any], fragment: str, tmp_path: Path
) -> None:
    with pytest.raises(SourceConfigError) as info:
        build_source(entry, project_dir=tmp_path)
    assert fragment in str(info.value)


def test_parameters_merge_into_the_entry(tmp_path: Path) -> None:
    source = build_source(
        {
            "url": "sqlite:///sub/data",
            "parameters": {"time_series": {"schema": "data[channel]@timestamp(unix)=value"}},
        },
        project_dir=tmp_path,
    )
    assert source.kind == "SQLite"
    assert source.label == "SQLite data.db"
    assert source.params["time_series"]["schema"].startswith("data[")
    assert getattr(source, "path") == (tmp_path / "sub" / "data.db").resolve()  # noqa: B009
    same = build_source({"type": "SQLite", "file": "data.db"}, project_dir=tmp_path)
    assert getattr(same, "path") == (tmp_path / "data.db").resolve()  # noqa: B009
