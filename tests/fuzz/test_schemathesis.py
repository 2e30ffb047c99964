"""Schemathesis loads ``/api/openapi.json`` from a live server (a project with a module, a
task with functions and an SQLite data source, so that every route has something behind
it) and sends what the description allows, and what it does not: no answer is a server
error, and every answer has a documented status, content type and shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fuzz.fuzzing import RECORDED, fuzzed_server, off_trio

# examples per operation (17 of them) and way of generating them
EXAMPLES = {"positive": 10, "negative": 6, "known paths": 10}

# path parameters that reach something (random ones mostly get a 4xx): a second positive
# pass uses these; the files written or deleted are not the project's own (those must stay)
KNOWN_PATHS = {
    "channels": ",".join([*RECORDED, "mod_value", "mod_tree"]),
    "taskname": "test",
    "topic": "fuzz",
    "name": "ada",
}
KNOWN_FILES = {
    "GET /config/content/{filename}": "slowplot-kept.json",
    "GET /config/file/{filename}": "scratch.json",
    "POST /config/file/{filename}": "scratch.json",
    "DELETE /config/file/{filename}": "scratch.json",
}


async def test_answers_match_the_description(tmp_path: Path) -> None:
    # imported here: importing schemathesis changes how hypothesis prints failing examples
    import requests
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    positive, negative = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
    conformance = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    async with fuzzed_server(tmp_path) as (_, client):
        base = str(client.base_url)
        statuses: dict[str, set[int]] = {}

        def fuzz(
            session: Any, operation: Any, strategy: Any, checks: list[Any], count: int
        ) -> None:
            @settings(
                max_examples=count,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def call(case: Any) -> None:
                reply = case.call_and_validate(
                    base_url=base + "/api", session=session, timeout=20, checks=checks
                )
                statuses.setdefault(operation.label, set()).add(reply.status_code)

            call()

        def run() -> None:
            schema = schemathesis.openapi.from_url(base + "/api/openapi.json", timeout=20)
            operations = [result.ok() for result in schema.get_all_operations()]
            assert len(operations) >= 17  # every route but /openapi.json itself
            with requests.Session() as session:
                for operation in operations:
                    names = {p.name for p in operation.iter_parameters() if p.location == "path"}
                    known = {name: KNOWN_PATHS[name] for name in names if name in KNOWN_PATHS}
                    if "filename" in names:
                        known["filename"] = KNOWN_FILES[operation.label]
                    for way, count in EXAMPLES.items():
                        if way == "known paths" and not known:
                            continue
                        mode = negative if way == "negative" else positive
                        paths = known if way == "known paths" else None
                        strategy = operation.as_strategy(mode, path_parameters=paths)
                        checks = conformance
                        if mode == negative:
                            checks = [*conformance, negative_data_rejection]
                        try:
                            fuzz(session, operation, strategy, checks, count)
                        except Unsatisfiable:  # nothing to get wrong: no parameter, no body
                            assert mode == negative, operation.label

        await off_trio(run)
        # the known paths reached real answers
        for label in ("GET /data/{channels}", "GET /hello/{name}", "POST /emit/{topic}"):
            assert statuses[label] & {200, 201}, (label, statuses[label])
        assert statuses["POST /consume/current_data"] & {200}, statuses
