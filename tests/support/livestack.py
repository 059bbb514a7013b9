"""The REAL gateway in-process (so the fake clock still works) behind nginx from the shipped config,
plus a /validate recorder, a raw-socket HTTP client, Set-Cookie parsing and a throw-away TLS cert."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from multidict import CIMultiDict, CIMultiDictProxy

from llmsec_aio.app import create_app, server_limits
from llmsec_aio.config import Config
from llmsec_aio.tokens import Clock
from tests.support.appserver import RunningApp, running_app
from tests.support.net import free_port
from tests.support.nginx import NginxInstance, running_nginx
from tests.support.stub_llm import StubLLM, running_stub

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ValidateCall:
    """One /validate request the gateway answered, with what it answered."""

    method: str
    request_headers: CIMultiDictProxy[str]
    status: int
    response_headers: CIMultiDictProxy[str]


@dataclass
class ValidateRecorder:
    """Counts and records /validate calls from inside the real app (outermost middleware)."""

    calls: list[ValidateCall] = field(default_factory=list)

    @property
    def statuses(self) -> list[int]:
        return [c.status for c in self.calls]

    def middleware(self) -> Middleware:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            response = await handler(request)
            if request.path == "/validate":
                self.calls.append(ValidateCall(
                    method=request.method,
                    request_headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                    status=response.status,
                    response_headers=CIMultiDictProxy(CIMultiDict(response.headers)),
                ))
            return response

        return record


@dataclass
class LiveGateway:
    app: web.Application
    served: RunningApp
    recorder: ValidateRecorder

    @property
    def base_url(self) -> str:
        return self.served.base_url


@asynccontextmanager
async def live_gateway(config: Config, clock: Clock) -> AsyncIterator[LiveGateway]:
    """The real create_app on a free loopback port, with the gateway's own header limits."""
    app = create_app(config, clock=clock)
    recorder = ValidateRecorder()
    # Outermost, so it sees the final status whatever the inner middleware did.
    app.middlewares.insert(0, recorder.middleware())
    async with running_app(app, handler_args=server_limits(config)) as served:
        yield LiveGateway(app, served, recorder)


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


def self_signed_cert(directory: Path, host: str = "127.0.0.1") -> TlsFiles:
    """A fresh self-signed certificate for the loopback address (trust it with cafile=cert)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = TlsFiles(cert=directory / "cert.pem", key=directory / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return files


def tls_substitutions(listen_port: int, tls: TlsFiles) -> dict[str, str]:
    """Switch the rendered `listen` line of nginx.conf.example to TLS with our certificate."""
    listen = f"listen 127.0.0.1:{listen_port};"
    return {listen: (f"listen 127.0.0.1:{listen_port} ssl;\n"
                     f"        ssl_certificate {tls.cert};\n"
                     f"        ssl_certificate_key {tls.key};")}


@dataclass
class Stack:
    """GW (real, in-process), the stub LLM and NGX (nginx.conf.example) wired together."""

    gateway: LiveGateway
    stub: StubLLM
    nginx: NginxInstance
    scheme: str = "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.nginx.port}"

    @property
    def recorder(self) -> ValidateRecorder:
        return self.gateway.recorder


@asynccontextmanager
async def nginx_stack(tmp_path: Path, config: Config, clock: Clock, *, tls: TlsFiles | None = None,
                      extra_substitutions: Mapping[str, str] | None = None) -> AsyncIterator[Stack]:
    """NGX in front of the real gateway; with `tls`, nginx listens with HTTPS only."""
    substitutions = dict(extra_substitutions or {})
    listen_port: int | None = None
    if tls is not None:
        listen_port = free_port()
        substitutions.update(tls_substitutions(listen_port, tls))
    async with running_stub() as stub, live_gateway(config, clock) as gateway:
        with running_nginx(tmp_path, gateway_port=gateway.served.port, llm_port=stub.port,
                           listen_port=listen_port, extra_substitutions=substitutions) as ngx:
            yield Stack(gateway, stub, ngx, scheme="https" if tls else "http")


def http_session() -> aiohttp.ClientSession:
    """A client with NO cookie jar: a cookie from one response must never ride along on the next."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                 timeout=aiohttp.ClientTimeout(total=60))


@dataclass(frozen=True)
class RawResponse:
    status: int
    head: bytes  # status line and header lines, up to and including the blank line
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


async def raw_request(host: str, port: int, request: bytes) -> RawResponse:
    """Send bytes exactly as given (the request should say `Connection: close`), read to EOF."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            data = await reader.read(-1)
    finally:
        writer.close()
        await writer.wait_closed()
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError(f"no complete response head in {data[:200]!r}")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    return RawResponse(status=status, head=head + sep, headers=headers, body=body)


@dataclass(frozen=True)
class SetCookie:
    name: str
    value: str
    # Attribute names lower-cased; flags such as HttpOnly map to None.
    attrs: dict[str, str | None]


def parse_set_cookie(line: str) -> SetCookie:
    first, *rest = (part.strip() for part in line.split(";"))
    name, _, value = first.partition("=")
    attrs: dict[str, str | None] = {}
    for part in rest:
        key, eq, val = part.partition("=")
        attrs[key.strip().lower()] = val.strip() if eq else None
    return SetCookie(name=name.strip(), value=value.strip(), attrs=attrs)
