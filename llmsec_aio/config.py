"""Frozen configuration dataclasses and `load_config(path)`, which reports every problem at once."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import ConfigError, Problem
from .policy import Policy, parse_policy
from .throttle import LimitConfig
from .yamlsource import YamlSource, describe, load_yaml

ALGORITHMS = ("EdDSA", "RS256")
LOGIN_METHODS = ("basic", "form")
SAMESITE = ("Lax", "Strict")
# aiohttp's default header limit is 8190 bytes; nginx in front may accept more (C31).
MIN_HEADER_SIZE = 8190

# Environment variables that override the file, for containers and systemd units.
ENV_OVERRIDES = {
    "LLMSEC_HOST": "server.host",
    "LLMSEC_PORT": "server.port",
    "LLMSEC_KEYS_DIR": "keys.dir",
    "LLMSEC_CREDENTIALS": "credentials.file",
    "LLMSEC_STATE_DIR": "server.state_dir",
}


@dataclass(frozen=True)
class RoleConfig:
    name: str
    prefix: str
    ttl: int
    login: frozenset[str]


DEFAULT_ROLES: Mapping[str, RoleConfig] = MappingProxyType(
    {
        r.name: r
        for r in (
            RoleConfig("agent_reasoning", "AGNR", 120, frozenset({"basic"})),
            RoleConfig("agent_fast", "AGNF", 60, frozenset({"basic"})),
            RoleConfig("agi", "AGIA", 1800, frozenset({"basic"})),
            RoleConfig("user", "USRS", 900, frozenset({"form"})),
            RoleConfig("monitoring", "MNTR", 1200, frozenset({"form"})),
            RoleConfig("admin", "ADMN", 3600, frozenset({"basic", "form"})),
        )
    }
)


DEFAULT_TRUSTED = (ip_network("127.0.0.0/8"), ip_network("::1/128"))


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 9000
    max_header_size: int = 65536
    state_dir: Path = Path("state")
    watch_interval: float = 1.0
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = DEFAULT_TRUSTED


@dataclass(frozen=True)
class KeysConfig:
    dir: Path = Path("keys")
    algorithm: str = "EdDSA"
    jwks_max_age: int = 300
    rotate_every: int = 0


@dataclass(frozen=True)
class CredentialsConfig:
    file: Path = Path("credentials.yaml")
    bcrypt_cost: int = 12
    verified_cache_ttl: int = 300


@dataclass(frozen=True)
class CacheConfig:
    backend: str = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    max_entries: int = 100_000
    ttl: int = 300


@dataclass(frozen=True)
class MetricsConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: no separate listener; /metrics on the main port needs a token


@dataclass(frozen=True)
class CookieConfig:
    name: str = "auth_token"
    secure: bool = True
    samesite: str = "Lax"
    domain: str | None = None


@dataclass(frozen=True)
class Config:
    path: Path
    server: ServerConfig = field(default_factory=ServerConfig)
    issuer: str = "http://127.0.0.1:9000"
    audience: str = "llmsec-aio"
    leeway: int = 5
    keys: KeysConfig = field(default_factory=KeysConfig)
    credentials: CredentialsConfig = field(default_factory=CredentialsConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    cookie: CookieConfig = field(default_factory=CookieConfig)
    logins: LimitConfig = field(default_factory=LimitConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    roles: Mapping[str, RoleConfig] = field(default_factory=lambda: DEFAULT_ROLES)
    policy: Policy = field(default_factory=Policy)

    @property
    def max_ttl(self) -> int:
        return max(r.ttl for r in self.roles.values())


Check = Callable[[Any], bool]


class _Reader:
    """Walks one mapping of the file, collecting problems instead of stopping at the first."""

    def __init__(self, src: YamlSource, key: str, data: Any, problems: list[Problem]) -> None:
        self.src, self.key, self.problems = src, key, problems
        if data is None:
            data = {}
        if not isinstance(data, dict):
            problems.append(src.problem(key or "(top)", "a mapping", describe(data)))
            data = {}
        self.data: dict[Any, Any] = data
        self.used: set[str] = set()

    def path(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def take(self, name: str, default: Any, expected: str, check: Check) -> Any:
        self.used.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        if not check(value):
            self.problems.append(self.src.problem(self.path(name), expected, describe(value)))
            return default
        return value

    def section(self, name: str) -> _Reader:
        self.used.add(name)
        return _Reader(self.src, self.path(name), self.data.get(name), self.problems)

    def finish(self) -> None:
        for name in self.data:
            if str(name) not in self.used:
                self.problems.append(
                    self.src.problem(self.path(str(name)), "a known key", "an unknown key")
                )


def _int(lo: int, hi: int) -> Check:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _networks(v: Any) -> bool:
    if not isinstance(v, list) or not all(isinstance(n, str) for n in v):
        return False
    try:
        for n in v:
            ip_network(n, strict=False)
    except ValueError:
        return False
    return True


def _str(v: Any) -> bool:
    return isinstance(v, str) and v.strip() != ""


def _one_of(*options: str) -> Check:
    return lambda v: v in options


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _apply_env(src: YamlSource, env: Mapping[str, str], problems: list[Problem]) -> None:
    if src.data is None:
        src.data = {}
    data = src.data if isinstance(src.data, dict) else None
    for var, dotted in ENV_OVERRIDES.items():
        if var not in env or data is None:
            continue
        section, name = dotted.split(".")
        value: Any = env[var]
        if name == "port":
            if not re.fullmatch(r"\d{1,5}", value):
                problems.append(Problem("environment", None, var, "a port number", describe(value)))
                continue
            value = int(value)
        target = data.setdefault(section, {})
        if isinstance(target, dict):
            target[name] = value


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Load and check `path`; raise one ConfigError naming every problem (file, line, key)."""
    path = Path(path).resolve()
    src = load_yaml(path)
    problems: list[Problem] = list(src.duplicates)
    _apply_env(src, os.environ if env is None else env, problems)
    base = path.parent

    top = _Reader(src, "", src.data, problems)
    s = top.section("server")
    server = ServerConfig(
        host=s.take("host", "127.0.0.1", "a host name or address", _str),
        port=s.take("port", 9000, "a port from 0 to 65535", _int(0, 65535)),
        max_header_size=s.take(
            "max_header_size", 65536, f"bytes from {MIN_HEADER_SIZE} to 1048576",
            _int(MIN_HEADER_SIZE, 1 << 20),
        ),
        state_dir=base / s.take("state_dir", "state", "a folder path", _str),
        watch_interval=s.take("watch_interval", 1.0, "seconds from 0 (off) to 60",
                              lambda v: _number(v) and 0 <= v <= 60),
        trusted_proxies=tuple(ip_network(n, strict=False) for n in s.take(
            "trusted_proxies", [str(n) for n in DEFAULT_TRUSTED],
            "a list of addresses or networks (CIDR)", _networks)),
    )
    s.finish()
    issuer = top.take("issuer", Config.issuer, "a non-empty string (URL)", _str)
    audience = top.take("audience", Config.audience, "a non-empty string", _str)
    leeway = top.take("leeway", 5, "seconds from 0 to 120", _int(0, 120))

    k = top.section("keys")
    keys = KeysConfig(
        dir=base / k.take("dir", "keys", "a folder path", _str),
        algorithm=k.take("algorithm", "EdDSA", " or ".join(ALGORITHMS), _one_of(*ALGORITHMS)),
        jwks_max_age=k.take("jwks_max_age", 300, "seconds from 0 to 86400", _int(0, 86400)),
        rotate_every=k.take("rotate_every", 0, "0 (off) or seconds from 60 to 31536000",
                            lambda v: _int(0, 31_536_000)(v) and (v == 0 or v >= 60)),
    )
    k.finish()

    c = top.section("credentials")
    credentials = CredentialsConfig(
        file=base / c.take("file", "credentials.yaml", "a file path", _str),
        bcrypt_cost=c.take("bcrypt_cost", 12, "a bcrypt cost from 4 to 16", _int(4, 16)),
        verified_cache_ttl=c.take("verified_cache_ttl", 300, "seconds from 0 (off) to 3600",
                                  _int(0, 3600)),
    )
    c.finish()

    ca = top.section("cache")
    cache = CacheConfig(
        backend=ca.take("backend", "memory", "memory or redis", _one_of("memory", "redis")),
        redis_url=ca.take("redis_url", CacheConfig.redis_url, "a redis:// or rediss:// URL",
                          lambda v: isinstance(v, str) and re.match(r"rediss?://", v) is not None),
        max_entries=ca.take("max_entries", 100_000, "a count from 1 to 10000000", _int(1, 10**7)),
        ttl=ca.take("ttl", 300, "seconds from 1 to 86400", _int(1, 86400)),
    )
    ca.finish()

    co = top.section("cookie")
    cookie = CookieConfig(
        name=co.take(
            "name", "auth_token", "a cookie name (letters, digits, _ and -)",
            lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", v) is not None,
        ),
        secure=co.take("secure", True, "true or false", _is_bool),
        samesite=co.take("samesite", "Lax", " or ".join(SAMESITE), _one_of(*SAMESITE)),
        domain=co.take("domain", None, "a domain name", _str),
    )
    co.finish()

    lo = top.section("logins")
    logins = LimitConfig(
        window=lo.take("window", 300, "seconds from 1 to 86400", _int(1, 86400)),
        max_failures=lo.take("max_failures", 5, "a count from 1 to 1000", _int(1, 1000)),
        max_failures_per_client=lo.take("max_failures_per_client", 20, "a count from 1 to 100000",
                                        _int(1, 100_000)),
        ban=lo.take("ban", 300, "seconds from 1 to 86400", _int(1, 86400)),
    )
    lo.finish()

    me = top.section("metrics")
    metrics = MetricsConfig(
        host=me.take("host", "127.0.0.1", "a host name or address", _str),
        port=me.take("port", 0, "a port from 0 (off) to 65535", _int(0, 65535)),
    )
    me.finish()
    if issuer.lower().startswith("https://") and not cookie.secure:
        problems.append(src.problem("cookie.secure", "true, since the issuer is an https:// URL",
                                    "boolean false"))

    roles = _roles(top, problems)
    top.used.add("policy")
    policy, policy_problems = parse_policy(top.data.get("policy"), src, roles=roles)
    problems.extend(policy_problems)
    top.finish()
    if problems:
        problems.sort(key=lambda p: (p.file != "environment", p.line or 0))
        raise ConfigError(problems)
    return Config(
        path=path, server=server, issuer=issuer, audience=audience, leeway=leeway, keys=keys,
        credentials=credentials, cache=cache, cookie=cookie, logins=logins, metrics=metrics,
        roles=roles,
        policy=policy,
    )


def _roles(top: _Reader, problems: list[Problem]) -> Mapping[str, RoleConfig]:
    if "roles" not in top.data:
        top.used.add("roles")
        return DEFAULT_ROLES
    r = top.section("roles")
    roles: dict[str, RoleConfig] = {}
    prefixes: dict[str, str] = {}
    for name in list(r.data):
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name):
            problems.append(r.src.problem(r.path(str(name)), "a role name like agent_fast",
                                          "an invalid name"))
            r.used.add(str(name))
            continue
        one = r.section(name)
        prefix = one.take("prefix", None, "4 capital letters", lambda v: isinstance(v, str)
                          and re.fullmatch(r"[A-Z]{4}", v) is not None)
        ttl = one.take("ttl", None, "seconds from 1 to 86400", _int(1, 86400))
        login = one.take(
            "login", None, "a non-empty list of basic and form",
            lambda v: isinstance(v, list) and bool(v) and all(m in LOGIN_METHODS for m in v),
        )
        for needed, value in (("prefix", prefix), ("ttl", ttl), ("login", login)):
            if value is None and needed not in one.data:
                problems.append(one.src.problem(one.path(needed), "a value", "nothing"))
        one.finish()
        if prefix is not None:
            if prefix in prefixes:
                problems.append(one.src.problem(one.path("prefix"), "a prefix used by one role",
                                                f"the prefix of role {prefixes[prefix]!r}"))
            prefixes.setdefault(prefix, name)
        if prefix is not None and ttl is not None and login is not None:
            roles[name] = RoleConfig(name, prefix, ttl, frozenset(login))
    if not r.data:
        problems.append(r.src.problem("roles", "at least one role", "none"))
    return MappingProxyType(roles)
