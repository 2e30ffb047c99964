"""Hypothesis against a real server on 127.0.0.1: data queries, channels, config files,
control documents and task commands. Whatever is sent, the answer is below 500, an error is
JSON ``{"status": "error", "message": ...}``, the server still answers ``/api/ping``, and what
was recorded (data, config files) is unchanged."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
from fuzz.fuzzing import KEPT_FILES, RECORDED, fuzz_settings, fuzzed_server, off_trio, on_trio
from hypothesis import example, given
from hypothesis import strategies as st

# ---------------------------------------------------------------------------------------------
# strategies

ODD_NUMBERS = st.sampled_from(
    [
        "",
        " ",
        "0",
        "-0",
        "nan",
        "NaN",
        "inf",
        "-Infinity",
        "1e999",
        "-1e999",
        "1e-320",
        "0x10",
        "1_000",
        "١٢",
        "½",
        "3600",
        "-3600",
        "0.001",
        "1e308",
        "9" * 400,
    ]
)
NUMBERS = st.one_of(
    ODD_NUMBERS,
    st.floats().map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)
TEXT = st.text(max_size=30)
VALUES = st.one_of(NUMBERS, TEXT, st.sampled_from(["mean", "max", "std", "1", "2", "yes"]))
DATA_PARAMS = st.sampled_from(
    ["length", "to", "resample", "reducer", "filler", "envelope", "prior_data", "align"]
)
QUERY = st.lists(st.tuples(st.one_of(DATA_PARAMS, TEXT), VALUES), max_size=8)
CHANNEL = st.one_of(
    st.sampled_from(
        [*RECORDED, "mod_value", "mod_tree", "nosuch", "rec_a.mod", "a:b", "", "..", "/"]
    ),
    st.text(min_size=1, max_size=20),
)
CHANNELS = st.lists(CHANNEL, max_size=6).map(
    lambda names: ",".join(urllib.parse.quote(name, safe="") for name in names)
)

JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=latin-1",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=zz",
        "application/octet-stream",
        "garbage",
    ]
)
TASK_KEYS = st.one_of(
    st.sampled_from(
        [
            "test.set_V0()",
            "await test.set_V0()",
            "parallel test.set_V0()",
            "await parallel test.set_V0()",
            "await test.get_state()",
            "await test.echo()",
            "test.set_V0(V0=1.5)",
            "await test.set_V0(V0=abc)",
            "await test.set_V0(V0=[1, 2], ramping={})",
            "test.set_V0(V0='x)",
            "test.nosuch()",
            "test.STATE()",
            "test._private()",
            "test.set_V0.__call__()",
            "nosuch.f()",
            "eventually test.set_V0()",
            " ()",
            "(()",
        ]
    ),
    TEXT.map(lambda text: f"{text}()"),
)
TASK_DOCS = st.builds(
    lambda key, fields: {**fields, key: True},
    TASK_KEYS,
    st.dictionaries(
        st.sampled_from(["V0", "ramping", "on", "text", "other"]) | TEXT,
        st.one_of(JSON, NUMBERS),
        max_size=4,
    ),
)
ORIGINS = st.one_of(
    st.none(),
    st.sampled_from(["null", "http://[", "http://evil.example:99999", "file://", "http://"]),
    st.from_regex(r"[!-~]{0,40}", fullmatch=True),
)
BODIES = st.one_of(
    JSON.map(lambda doc: json.dumps(doc).encode()),
    TASK_DOCS.map(lambda doc: json.dumps(doc).encode()),
    st.dictionaries(TEXT, JSON, max_size=4).map(lambda doc: json.dumps(doc).encode()),
    st.binary(max_size=100),
    st.sampled_from([b"", b"{", b'{"a": 1', b"\xff\xfe{}", b'{"a": "\xff"}', b"[" * 5000]),
    st.just(b'{"set_mod": 1}'),
)

FILE_NAMES = st.one_of(
    st.sampled_from(
        [
            *KEPT_FILES,
            "SLOWPLOT-KEPT.JSON",
            "new-file.json",
            "new.yaml",
            "x.py",
            "x.sh",
            ".hidden.json",
            "..",
            ".",
            "..%2FSlowdashProject.yaml",
            "a" * 300 + ".json",
            "nul\x00.json",
            "sp ace.json",
            "ü.json",
        ]
    ),
    st.text(min_size=1, max_size=30),
    st.text(min_size=1, max_size=20).map(lambda text: text + ".json"),
)
FILE_BODIES = st.one_of(
    st.binary(max_size=100),
    JSON.map(lambda doc: json.dumps(doc).encode()),
    st.sampled_from([b"{", b"a: [", b"\t- x", b"", b"\xff\xfe", b"[" * 3000, b"- " * 3000]),
)


# ---------------------------------------------------------------------------------------------
# invariants


def check_answer(reply: httpx.Response, *, parse: bool = True) -> Any:
    """Below 500; an error is a JSON error document; JSON content parses (with ``parse``:
    a file of config/ is served as it is, JSON or not). The JSON, if any."""
    where = f"{reply.request.method} {reply.request.url}"
    assert reply.status_code < 500, (where, reply.status_code, reply.text[:500])
    content_type = reply.headers.get("content-type", "")
    if reply.status_code >= 400:
        assert content_type.startswith("application/json"), (where, content_type)
        doc = reply.json()
        assert doc["status"] == "error", (where, doc)
        assert isinstance(doc["message"], str) and doc["message"], (where, doc)
        return doc
    if parse and content_type.startswith("application/json"):
        return reply.json()
    return None


async def send(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    params: Any = None,
    body: bytes | None = None,
    content_type: str | None = None,
    parse: bool = True,
) -> Any:
    headers = {"content-type": content_type} if content_type is not None else {}
    reply = await client.request(method, path, params=params, content=body, headers=headers)
    return check_answer(reply, parse=parse)


async def send_raw(client: httpx.AsyncClient, raw_path: bytes) -> Any:
    """A request whose path and query go out byte for byte (invalid percent-escapes...)."""
    url = client.base_url.copy_with(raw_path=raw_path)
    return check_answer(await client.get(url))


# ---------------------------------------------------------------------------------------------
# tests


async def test_data_and_channel_queries(tmp_path: Path) -> None:
    async with fuzzed_server(tmp_path) as (_, client):

        @fuzz_settings(max_examples=150)
        @given(channels=CHANNELS, query=QUERY)
        @example(channels="rec_a", query=[("length", "1e308"), ("resample", "1e-300")])
        @example(channels="rec_a,nosuch", query=[("to", "nan"), ("length", "-1")])
        @example(channels="rec_a", query=[("reducer", "\x00"), ("envelope", "9" * 400)])
        @example(channels="rec_a", query=[("prior_data", "2"), ("to", str(1e18))])
        @example(  # was a 500: align=1 of a huge `to` to a tiny resample overflowed
            channels="rec_a",
            query=[("align", "1"), ("to", "1.5e83"), ("resample", "1.8e-239"), ("length", "3e9")],
        )
        def data(channels: str, query: list[tuple[str, str]]) -> None:
            doc = on_trio(send, client, "GET", f"/api/data/{channels}", params=query)
            assert isinstance(doc, dict)

        @fuzz_settings(max_examples=60)
        @given(query=QUERY, path=st.sampled_from(["/api/channels", "/api/config", "/api/ping"]))
        def listings(query: list[tuple[str, str]], path: str) -> None:
            doc = on_trio(send, client, "GET", path, params=query)
            assert doc is not None

        @fuzz_settings(max_examples=60)
        @given(raw=st.binary(max_size=40))
        @example(raw=b"%ff%fe")
        @example(raw=b"rec_a?length=%ZZ&to=%&%%")
        @example(raw=b"rec_a?length=%ff%00")
        def raw_paths(raw: bytes) -> None:
            quoted = urllib.parse.quote(raw, safe=b"%?&=,").encode()
            on_trio(send_raw, client, b"/api/data/" + quoted)

        await off_trio(data)
        await off_trio(listings)
        await off_trio(raw_paths)


async def test_control_documents(tmp_path: Path) -> None:
    async with fuzzed_server(tmp_path) as (server, client):

        @fuzz_settings(max_examples=200)
        @given(body=BODIES, content_type=CONTENT_TYPES, origin=ORIGINS)
        @example(
            body=b'{"test.set_V0()": true, "V0": "abc"}',
            content_type="application/json",
            origin=None,
        )
        @example(body=b'{"await test.set_V0()": true, "V0": "NaN"}', content_type=None, origin=None)
        @example(body=b'{"await test.set_V0()": true, "V0": 1e999}', content_type=None, origin=None)
        @example(body=b'{"set_mod": "\\ud800"}', content_type="text/plain", origin=None)
        @example(body=b'{"set_mod": 1}', content_type=None, origin="http://[")
        def control(body: bytes, content_type: str | None, origin: str | None) -> None:
            headers = {"content-type": content_type} if content_type is not None else {}
            if origin is not None:
                headers["origin"] = origin
            reply = on_trio(client.post, "/api/control", content=body, headers=headers)
            doc = check_answer(reply)
            if origin is not None and origin != str(client.base_url):
                assert reply.status_code == 403 and "cross-origin" in doc["message"], doc

        @fuzz_settings(max_examples=80)
        @given(
            name=st.one_of(st.just("test"), st.just("nosuch"), st.text(min_size=1, max_size=20)),
            body=st.one_of(
                BODIES,
                st.fixed_dictionaries(
                    {"action": st.one_of(st.sampled_from(["start", "stop", "reload"]), JSON)}
                ).map(lambda doc: json.dumps(doc).encode()),
            ),
            content_type=CONTENT_TYPES,
        )
        def task_control(name: str, body: bytes, content_type: str | None) -> None:
            path = "/api/control/task/" + urllib.parse.quote(name, safe="")
            on_trio(send, client, "POST", path, body=body, content_type=content_type)

        @fuzz_settings(max_examples=30)
        @given(query=st.lists(st.tuples(st.just("since"), VALUES), max_size=2))
        def task_list(query: list[tuple[str, str]]) -> None:
            on_trio(send, client, "GET", "/api/control/task", params=query)

        await off_trio(control)
        await off_trio(task_control)
        await off_trio(task_list)
        # the task still works as a form would use it (start it again: the fuzz may stop it)
        await client.post("/api/control/task/test", json={"action": "start"})
        reply = await client.post("/api/control", json={"await test.set_V0()": True, "V0": 2})
        assert reply.json() == {"status": "ok", "result": 2.0}, reply.text
        assert server.tasks.get("test") is not None


async def test_config_files(tmp_path: Path) -> None:
    async with fuzzed_server(tmp_path) as (_, client):

        @fuzz_settings(max_examples=200)
        @given(
            name=FILE_NAMES,
            method=st.sampled_from(["GET", "POST", "DELETE", "CONTENT"]),
            body=FILE_BODIES,
            overwrite=st.one_of(st.sampled_from(["", "yes", "no"]), TEXT),
            content_type=st.one_of(st.sampled_from(["json", "html"]), TEXT),
        )
        @example(name="a" * 300 + ".json", method="POST", body=b"{}", overwrite="", content_type="")
        @example(name="a" * 300 + ".json", method="GET", body=b"", overwrite="", content_type="")
        @example(
            name="deep.json", method="POST", body=b"[" * 3000, overwrite="yes", content_type=""
        )
        @example(name="deep.json", method="CONTENT", body=b"", overwrite="", content_type="json")
        def files(name: str, method: str, body: bytes, overwrite: str, content_type: str) -> None:
            kept = name in KEPT_FILES
            path = "/api/config/file/" + urllib.parse.quote(name, safe="")
            if method == "POST":
                params = {"overwrite": "" if kept else overwrite}
                doc = on_trio(send, client, "POST", path, params=params, body=body)
                if kept:
                    assert doc["status"] == "exists", doc
            elif method == "DELETE" and not kept:
                on_trio(send, client, "DELETE", path)
            elif method == "CONTENT":
                content = "/api/config/content/" + urllib.parse.quote(name, safe="")
                on_trio(send, client, "GET", content, params={"content_type": content_type})
            else:
                on_trio(send, client, "GET", path, parse=False)

        @fuzz_settings(max_examples=30)
        @given(query=st.lists(st.tuples(st.sampled_from(["sortby", "reverse"]), VALUES)))
        def listings(query: list[tuple[str, str]]) -> None:
            for path in ("/api/config/filelist", "/api/config/contentlist"):
                doc = on_trio(send, client, "GET", path, params=query)
                assert isinstance(doc, list) or doc["status"] == "error", doc

        await off_trio(files)
        await off_trio(listings)


# ---------------------------------------------------------------------------------------------
# what the fuzzing found in config files (each was a 500, or a hang)


def _bomb(levels: int) -> bytes:
    """A "billion laughs" layout: each line repeats the one before ten times."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]"
        for level in range(1, levels)
    ]
    return ("\n".join(lines) + "\n").encode()


async def test_config_files_that_would_crash_or_hang_are_refused(tmp_path: Path) -> None:
    cases = {
        # 10**9 values in 450 bytes: the reply used to be built (gigabytes) until memory ran out
        "slowplot-bomb.yaml": (_bomb(9), "more than 100000 values"),
        "slowplot-loop.yaml": (b"a: &a [*a]\n", "refers to a value that contains it"),
        "slowplot-deep.json": (b"[" * 5000 + b"]" * 5000, "nested more than 100"),
        "slowplot-deeper.yaml": (b"[" * 150 + b"]" * 150, "nested more than 100"),
        "slowplot-nested.json": (b"[" * 150 + b"]" * 150, "nested more than 100"),
    }
    async with fuzzed_server(tmp_path) as (_, client):
        for name, (body, _) in cases.items():
            written = await client.post(f"/api/config/file/{name}", content=body)
            assert written.status_code == 201, written.text
        for name, (_, fragment) in cases.items():
            reply = await client.get(f"/api/config/content/{name}")
            assert reply.status_code == 400, (name, reply.text[:200])
            assert fragment in reply.json()["message"], reply.json()
        listed = {
            entry["config_file"]: entry
            for entry in (await client.get("/api/config/contentlist")).json()
        }
        for name, (_, fragment) in cases.items():
            assert fragment in listed[name]["config_error"], listed[name]
        assert listed["slowplot-kept.json"]["title"] == "kept"
        # a file name longer than file systems take: 400, not an OSError's 500
        long_name = "a" * 300 + ".json"
        for method in ("GET", "POST", "DELETE"):
            reply = await client.request(method, f"/api/config/file/{long_name}", content=b"{}")
            assert reply.status_code == 400 and "longer than 255" in reply.json()["message"]


async def test_a_lone_surrogate_echoed_by_a_task_function(tmp_path: Path) -> None:
    """Found by fuzzing: JSON may carry a lone surrogate, which has no UTF-8 form; the reply
    keeps it as its JSON escape instead of failing with 500."""
    async with fuzzed_server(tmp_path) as (_, client):
        body = b'{"await test.echo()": true, "text": "\\ud800"}'
        reply = await client.post("/api/control", content=body)
        assert reply.status_code == 200, reply.text
        assert b"\\ud800" in reply.content and reply.json()["result"] == "\ud800"
