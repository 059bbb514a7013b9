"""openapi.yaml against the real gateway: a bounded schemathesis run, and its paths vs the app's routes."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, Phase, given, settings
from openapi_spec_validator import validate as validate_spec
from schemathesis import APIOperation, Case, CheckFunction
from schemathesis import checks as st_checks
from schemathesis.core.result import Ok

from llmsec_aio.app import create_app
from tests.support.deployment import DEFAULT_USERS, Deployment, make_deployment
from tests.support.threaded import ThreadedApp, gateway_in_thread

SPEC_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"
SCHEMA = schemathesis.openapi.from_path(SPEC_PATH)
Operation = APIOperation[Any, Any, Any, Any]
AnyCase = Case[Any]


def _operations() -> dict[str, Operation]:
    found: dict[str, Operation] = {}
    for result in SCHEMA.get_all_operations():
        assert isinstance(result, Ok), result  # schemathesis could not read this operation
        found[result.ok().label] = result.ok()
    return found


OPERATIONS = _operations()
# No 5xx, and status code, content type, body and documented headers all as openapi.yaml says.
CHECKS: list[CheckFunction] = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
    st_checks.response_headers_conformance,
]
# 18 operations x 12 anonymous examples, 16 authenticated variants x 6 (each with a fresh
# login): about 350 requests in all, a few seconds. No shrinking phase, to stay bounded.
ANONYMOUS_EXAMPLES = 12
AUTHENTICATED_EXAMPLES = 6
HTTP_METHODS = {"get", "head", "post", "put", "patch", "delete", "options", "trace"}


def bounded(max_examples: int) -> settings:
    # No example database: runs must not depend on what an earlier run found and stored.
    return settings(max_examples=max_examples, deadline=None, database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def module_deployment(tmp_path_factory: pytest.TempPathFactory, rsa_key: rsa.RSAPrivateKey,
                      ed_key: ed25519.Ed25519PrivateKey) -> Deployment:
    dep = make_deployment(tmp_path_factory.mktemp("openapi"), rsa_key, ed_key)
    # A monitoring user, so /metrics also answers 200 to someone other than the admin.
    dep.add_user("mon1", "mon1-pw", "monitoring")
    return dep


@pytest.fixture(scope="module")
def gateway(module_deployment: Deployment) -> Iterator[ThreadedApp]:
    with gateway_in_thread(module_deployment.config()) as gw:
        yield gw


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


_addresses = itertools.count(1)


def fresh_token(gw: ThreadedApp, http: requests.Session, user: str, password: str,
                *, form: bool = False) -> str:
    """A new token per example: a generated /logout or /admin/revoke may revoke the last one.
    Each login comes from its own trusted X-Real-IP, so the bans that schemathesis's random Basic
    credentials earn for 127.0.0.1 never refuse these logins. `form`: roles without `basic`
    log in with the form; the cookie's JWT works as a Bearer token too."""
    n = next(_addresses)
    address = {"X-Real-IP": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"}
    if form:
        resp = http.post(f"{gw.base_url}/login", data={"username": user, "password": password},
                         headers=address, allow_redirects=False, timeout=10)
        assert resp.status_code == 303, resp.text
        return str(resp.cookies["auth_token"])
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
    resp = http.post(f"{gw.base_url}/llm/login", timeout=10,
                     headers={"Authorization": f"Basic {credentials}", **address})
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["token"]
    return token


def call_and_check(case: AnyCase, gw: ThreadedApp, http: requests.Session,
                   headers: dict[str, str] | None = None,
                   cookies: dict[str, str] | None = None) -> int:
    # Redirects are answers to check (303 + Location), not something to follow.
    response = case.call(base_url=gw.base_url, session=http, headers=headers, cookies=cookies,
                         allow_redirects=False, timeout=10)
    case.validate_response(response, checks=CHECKS)
    return response.status_code


def test_openapi_yaml_is_a_valid_openapi_document() -> None:
    validate_spec(yaml.safe_load(SPEC_PATH.read_text()))


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_anonymous_requests_conform(label: str, gateway: ThreadedApp,
                                    http: requests.Session) -> None:
    statuses: set[int] = set()

    @bounded(ANONYMOUS_EXAMPLES)
    @given(case=OPERATIONS[label].as_strategy())
    def run(case: AnyCase) -> None:
        statuses.add(call_and_check(case, gateway, http))

    run()
    assert statuses and max(statuses) < 500


def _agent(gw: ThreadedApp, http: requests.Session) -> dict[str, str]:
    return {"Authorization": f"Bearer {fresh_token(gw, http, 'agent1', DEFAULT_USERS['agent1'][0])}"}


def _admin(gw: ThreadedApp, http: requests.Session) -> dict[str, str]:
    return {"Authorization": f"Bearer {fresh_token(gw, http, 'admin1', DEFAULT_USERS['admin1'][0])}"}


def _monitoring(gw: ThreadedApp, http: requests.Session) -> dict[str, str]:
    return {"Authorization": f"Bearer {fresh_token(gw, http, 'mon1', 'mon1-pw', form=True)}"}


def _basic(user: str) -> Callable[[ThreadedApp, requests.Session], dict[str, str]]:
    password = DEFAULT_USERS[user][0]
    value = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return lambda gw, http: {"Authorization": value, "X-Real-IP": "10.255.255.254"}


# Which valid credential each secured operation gets, and what it must then answer (besides the
# documented statuses the schema checks): the 2xx/403 paths anonymous fuzzing never reaches.
AUTHENTICATED: dict[str, tuple[Callable[[ThreadedApp, requests.Session], dict[str, str]], set[int]]] = {
    "POST /llm/login#agent": (_basic("agent1"), {200}),
    "POST /llm/login#web-user": (_basic("web1"), {403}),  # role without `basic`
    "GET /metrics#admin": (_admin, {200}),
    "GET /metrics#monitoring": (_monitoring, {200}),
    "GET /metrics#agent": (_agent, {403}),
    "POST /admin/revoke#admin": (_admin, {200}),
    "POST /admin/revoke#agent": (_agent, {403}),
    "GET /me#bearer": (_agent, {200}),
    "POST /logout#bearer": (_agent, {200, 303, 403}),
    **{f"{method} /validate#agent": (_agent, {200, 403})
       for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")},
}


@pytest.mark.parametrize("variant", sorted(AUTHENTICATED))
def test_authenticated_requests_conform(variant: str, gateway: ThreadedApp,
                                        http: requests.Session) -> None:
    label = variant.partition("#")[0]
    credential, expected = AUTHENTICATED[variant]
    statuses: set[int] = set()

    @bounded(AUTHENTICATED_EXAMPLES)
    @given(case=OPERATIONS[label].as_strategy())
    def run(case: AnyCase) -> None:
        status = call_and_check(case, gateway, http, headers=credential(gateway, http))
        statuses.add(status)
        assert status in expected, (variant, status)

    run()


def test_a_session_cookie_reaches_me_and_validate(gateway: ThreadedApp,
                                                  http: requests.Session) -> None:
    # The cookie path of the same operations: a form login's auth_token, then /me and /validate.
    resp = http.post(f"{gateway.base_url}/login", allow_redirects=False, timeout=10,
                     data={"username": "web1", "password": DEFAULT_USERS["web1"][0]},
                     headers={"X-Real-IP": "10.255.255.253"})
    assert resp.status_code == 303
    cookie = {"auth_token": str(resp.cookies["auth_token"])}
    for label in ("GET /me", "GET /validate"):
        statuses = run_examples(label, gateway, http, cookie)
        assert statuses <= {200, 403}, (label, statuses)


def run_examples(label: str, gw: ThreadedApp, http: requests.Session,
                 cookies: dict[str, str]) -> set[int]:
    statuses: set[int] = set()

    @bounded(AUTHENTICATED_EXAMPLES)
    @given(case=OPERATIONS[label].as_strategy())
    def run(case: AnyCase) -> None:
        statuses.add(call_and_check(case, gw, http, cookies=cookies))

    run()
    return statuses


def test_jwks_answers_304_to_its_etag(gateway: ThreadedApp, http: requests.Session) -> None:
    op = OPERATIONS["GET /.well-known/jwks.json"]
    first = http.get(f"{gateway.base_url}/.well-known/jwks.json", timeout=10)
    case = op.Case(headers={"If-None-Match": first.headers["ETag"]})
    assert call_and_check(case, gateway, http) == 304


# ---- the spec's paths and the app's routes -------------------------------------------------

def spec_operations() -> dict[str, set[str]]:
    paths = yaml.safe_load(SPEC_PATH.read_text())["paths"]
    return {path: {m.upper() for m in item if m in HTTP_METHODS} for path, item in paths.items()}


def app_routes(deployment: Deployment) -> dict[str, set[str]]:
    app: web.Application = create_app(deployment.config())
    routes: dict[str, set[str]] = {}
    for route in app.router.routes():
        assert route.resource is not None
        routes.setdefault(route.resource.canonical, set()).add(route.method)
    return routes


def test_every_documented_path_is_a_route_and_every_route_is_documented(deployment: Deployment) -> None:
    documented, served = spec_operations(), app_routes(deployment)
    assert set(documented) == set(served)
    for path, methods in served.items():
        if "*" in methods:
            # A catch-all route: the spec must list the methods NGINX and old clients use.
            assert {"GET", "HEAD", "POST"} <= documented[path], path
            continue
        # aiohttp's add_get also answers HEAD; the spec need not list that implicit HEAD.
        implicit_head = {"HEAD"} if "GET" in methods else set()
        assert documented[path] - implicit_head == methods - implicit_head, path
