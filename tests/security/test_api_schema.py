"""Schemathesis against the API's own OpenAPI document: every operation, valid and invalid input.

Each documented operation gets requests generated from its schema, positive (what the schema
allows) and negative (what it forbids), sent with the credentials the route takes (the admin
token on ``/api``, the write key on ``/v1``) through the ASGI app over the real stack of
``conftest.py``. Every answer must be: no 5xx, a documented status code, a documented content
type, a body that matches the documented schema, and a 4xx for input the schema forbids.

Generation runs in a worker thread and each request is sent on the test's event loop (where
the database pool lives); the examples are derandomized so CI sees the same requests each run.
The operations share one stack per module and run in a fixed order, so those that change
state (archive, erase, revoke) do so the same way every time. Routes left out of the document
(dashboard pages, links, the snippet) are covered by ``test_route_auth.py`` and the tracking
and dashboard tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi import checks as openapi_checks

from journeyman.orchestrator.api import Services, create_app

from .conftest import ADMIN_TOKEN, CUSTOMER, WRITE_KEY, Stack, basic, bearer

# Examples per operation and mode: enough to reach each validation branch (150 found nothing
# more), and the whole file runs in about two minutes on two busy cores.
MAX_EXAMPLES = 60
REQUEST_SECONDS = 30.0

# Invalid input must get one of the API's own refusals: never a 5xx, never silently a 2xx.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "409", "413"],
            }
        }
    }
)

CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.negative_data_rejection,
]


def _document() -> dict[str, Any]:
    """The OpenAPI document; building the app touches no database, so None stands in."""
    services = Services(
        pool=cast(Any, None),
        database_url="",
        write_key="-",
        admin_token="-",
        max_body_bytes=1,
    )
    return create_app(services, follow_deploys=False).openapi()


DOCUMENT = _document()
METHODS = ("get", "put", "post", "delete", "patch")
# Keywords that describe a parameter without constraining it.
_NOTES = {"title", "description", "default", "examples"}
# Schemas that any path segment or query value satisfies.
STRINGS = [{"type": "string"}, {"type": "null"}]


def _breakable(spec: dict[str, Any]) -> bool:
    """Whether some input of the operation can violate its schema: a body, or a parameter
    constrained beyond "any string" (every path segment and query value is a string)."""
    if spec.get("requestBody"):
        return True
    for parameter in spec.get("parameters", []):
        schema = {k: v for k, v in parameter["schema"].items() if k not in _NOTES}
        options = schema.get("anyOf", [schema])
        if any({k: v for k, v in o.items() if k not in _NOTES} not in STRINGS for o in options):
            return True
    return False


# Negative cases need an input to break: operations with nothing breakable get none.
RUNS = [
    pytest.param(method.upper(), path, mode, id=f"{method.upper()} {path} {mode}")
    for path, methods in DOCUMENT["paths"].items()
    for method, spec in methods.items()
    if method in METHODS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or _breakable(spec)
]


def credentials(path: str) -> dict[str, str]:
    """What a legitimate caller of ``path`` sends: the admin token or the write key."""
    if path.startswith("/api/"):
        return bearer(ADMIN_TOKEN)
    if path.startswith("/v1/"):
        return basic(WRITE_KEY)
    return {}


def known_ids(stack: Stack) -> dict[str, list[str]]:
    """Path parameters that name something deployed, so requests get past the 404s."""
    return {
        "journey_id": stack.journey_ids,
        "segment_id": stack.segment_ids,
        "customer_id": [CUSTOMER],
        "source_id": ["default"],
    }


def cases(operation: Any, mode: GenerationMode, stack: Stack) -> st.SearchStrategy[Case[Any]]:
    """Generated cases, half of them (when the path allows) about something that exists."""
    strategies = [operation.as_strategy(generation_mode=mode)]
    names = {p.name for p in operation.path_parameters}
    fixed = {name: ids for name, ids in known_ids(stack).items() if name in names}
    if fixed:
        strategies.append(
            st.fixed_dictionaries(
                {name: st.sampled_from(ids) for name, ids in fixed.items()}
            ).flatmap(
                lambda chosen: operation.as_strategy(generation_mode=mode, path_parameters=chosen)
            )
        )
    return st.one_of(strategies)


def as_httpx(case: Case[Any], headers: dict[str, str]) -> httpx.Request:
    """The request Schemathesis would send, serialized as ``requests`` does, for httpx."""
    kwargs = case.as_transport_kwargs(base_url="http://journeyman.test", headers=headers)
    kwargs.pop("timeout", None)
    prepared = requests.Request(**kwargs).prepare()
    body = prepared.body
    if isinstance(body, str):
        body = body.encode()
    assert body is None or isinstance(body, bytes), f"unexpected body {type(body)}"
    headers = {
        name: value if isinstance(value, str) else value.decode("latin-1")
        for name, value in prepared.headers.items()
    }
    return httpx.Request(str(prepared.method), str(prepared.url), headers=headers, content=body)


@pytest.mark.parametrize(("method", "path", "mode"), RUNS)
async def test_operation_conforms_to_its_schema(
    stack: Stack, method: str, path: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
    operation = schema[path][method]
    headers = credentials(path)
    loop = asyncio.get_running_loop()

    def send(case: Case[Any]) -> httpx.Response:
        future = asyncio.run_coroutine_threadsafe(stack.http.send(as_httpx(case, headers)), loop)
        return future.result(timeout=REQUEST_SECONDS)

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=cases(operation, mode, stack))
    def conforms(case: Case[Any]) -> None:
        response = send(case)
        case.validate_response(response, checks=CHECKS, headers=headers)

    run: Callable[[], None] = conforms
    await asyncio.to_thread(run)
