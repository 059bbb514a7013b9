"""Route policy for /validate: which role (and subject) may use which method on which path.

Pure: normalizes NGINX's raw `$request_uri`, matches it against rules compiled at load time.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal
from urllib.parse import unquote_to_bytes

from .errors import Problem
from .users import USERNAME
from .yamlsource import YamlSource, describe

MAX_PATH: Final = 2048

# NUL, C0 controls and DEL: never part of a real route, and a classic way to split paths.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_METHOD = re.compile(r"[A-Za-z]{1,20}")
_RULE_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
_NEVER = re.compile(r"(?!)")

Reason = Literal["allowed", "denied_by_rule", "no_rule", "bad_path"]


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------

# No lru_cache here. Measured with timeit: decide() on the default rules takes 0.8-1.9 µs
# without one and 0.35-0.8 µs with one (all hits), while an empty aiohttp handler alone costs
# about 40 µs a request (24k req/s under wrk on the same machine). About 1 µs is not worth a
# cache whose keys are raw targets: X-Original-URI may be as long as a header line (64 KiB),
# so 4096 of them could pin hundreds of MB, and unique targets (queries) defeat it anyway.
def normalize_path(uri: str) -> str | None:
    """The path NGINX's `$uri` would hold for the raw request target `uri`, or None to deny.

    The query and fragment are dropped, the path is percent-decoded once as strict UTF-8
    (`%2f` is a slash, `%2e` a dot, as in NGINX), repeated slashes are merged, `.` and `..`
    are resolved and a trailing slash is removed (so `/llm/models/` matches a rule for
    `/llm/models`; the root stays `/`). Backslash is an ordinary character, as in NGINX on
    Linux. None when the target is not absolute, does not decode, holds control characters,
    still holds a `%` after one decoding (double encoding is refused, not guessed), climbs
    above the root with `..`, or its path is longer than MAX_PATH characters.
    """
    path = uri.partition("?")[0]
    if "#" in path:
        path = path.partition("#")[0]
    if not path.startswith("/") or len(path) > MAX_PATH:
        return None
    if "%" in path:
        try:
            path = unquote_to_bytes(path).decode("utf-8")
        except UnicodeError:  # a lone surrogate on the way in, or bytes that are not UTF-8
            return None
        if "%" in path:
            return None
    elif not path.isascii():
        try:
            path.encode("utf-8")
        except UnicodeError:
            return None
    if _CONTROL.search(path) is not None:
        return None
    # Fast path: most targets are already normal, and splitting would only copy them.
    if "//" not in path and "/." not in path and (len(path) == 1 or path[-1] != "/"):
        return path
    return _resolve(path)


def _resolve(path: str) -> str | None:
    kept: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not kept:
                return None
            kept.pop()
        else:
            kept.append(segment)
    return "/" + "/".join(kept)


class PatternError(ValueError):
    """A path pattern that cannot be compiled; the message says what was expected."""


@dataclass(frozen=True)
class PathPattern:
    """One path pattern of a rule, compiled once; `captures_model` if it has `{model}`."""

    source: str
    regex: re.Pattern[str]
    captures_model: bool


# Each segment compiles to a piece that begins with its own slash, so `**` can match nothing.
_ONE_SEGMENT = r"/[^/]+"
_ANY_SEGMENTS = r"(?:/[^/]+)*"
_MODEL_SEGMENT = r"/([^/]+)"


def compile_pattern(pattern: str) -> PathPattern:
    """Compile a path pattern: literal segments, `*` within a segment, `**` for zero or more
    whole segments, `{model}` for one segment captured as the model name.

    The pattern is normalized like a path (`//`, `.` and a trailing slash go away).
    Raises PatternError for anything that could never match or would be ambiguous.
    """
    if not pattern.startswith("/"):
        raise PatternError("a path pattern starting with /")
    if len(pattern) > MAX_PATH:
        raise PatternError(f"a path pattern of at most {MAX_PATH} characters")
    if _CONTROL.search(pattern) or any(c in pattern for c in "%?#"):
        # Paths are matched decoded and without their query, so these could never match.
        raise PatternError("a decoded path pattern without %, ?, # or control characters")
    segments = [s for s in pattern.split("/") if s not in ("", ".")]
    if ".." in segments:
        raise PatternError("a path pattern without .. segments")
    if segments == ["**"]:
        # The root `/` has no segment for `(?:/[^/]+)*` to match, yet `/**` must cover it.
        return PathPattern(pattern, re.compile(r"/.*", re.DOTALL), False)
    pieces = [_segment_regex(s) for s in segments]
    if segments.count("**") > 1:
        # Each extra ** multiplies regex backtracking by the number of path segments.
        raise PatternError("at most one ** per pattern")
    if segments.count("{model}") > 1:
        raise PatternError("at most one {model} per pattern")
    regex = "".join(pieces) or "/"
    return PathPattern(pattern, re.compile(regex, re.DOTALL), "{model}" in segments)


def _segment_regex(segment: str) -> str:
    if segment == "**":
        return _ANY_SEGMENTS
    if segment == "{model}":
        return _MODEL_SEGMENT
    if "**" in segment:
        raise PatternError("** only as a whole segment")
    if "{" in segment or "}" in segment:
        raise PatternError("{model} only as a whole segment (the only placeholder)")
    if segment == "*":
        return _ONE_SEGMENT
    chunks = segment.split("*")
    if len(chunks) == 1:
        return "/" + re.escape(segment)
    # Glob as fnmatch does it: the shortest match of each middle chunk, atomically, keeps
    # matching linear in the segment length however many stars there are.
    middle = "".join(f"(?>[^/]*?{re.escape(c)})" for c in chunks[1:-1])
    return f"/{re.escape(chunks[0])}{middle}[^/]*{re.escape(chunks[-1])}"


# ---------------------------------------------------------------------------------------------
# Rules and decisions
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    """The answer for one request; `rule` names the deciding rule, None if there was none."""

    allowed: bool
    rule: str | None
    reason: Reason


_BAD_PATH: Final = Decision(False, None, "bad_path")
_NO_RULE: Final = Decision(False, None, "no_rule")


@dataclass(frozen=True)
class Rule:
    """Matches by path, method and model; then allows its roles (and subjects, if listed).

    Methods are upper-cased and GET brings HEAD; None means any method or any subject.
    With `models`, only a path that captured a `{model}` matching one of the globs matches.
    """

    name: str
    paths: tuple[PathPattern, ...]
    methods: frozenset[str] | None = None
    models: tuple[str, ...] | None = None
    roles: frozenset[str] = frozenset()
    subjects: frozenset[str] | None = None
    # Derived once here so that decide() only looks things up.
    _any_path: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _model: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _allow: Decision = field(init=False, repr=False, compare=False)
    _deny: Decision = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.methods is not None:
            methods = {m.upper() for m in self.methods}
            if "GET" in methods:
                methods.add("HEAD")
            object.__setattr__(self, "methods", frozenset(methods))
        combined = "|".join(f"(?:{p.regex.pattern})" for p in self.paths)
        object.__setattr__(self, "_any_path", re.compile(combined, re.DOTALL) if self.paths else _NEVER)
        model = None
        if self.models is not None:
            globs = "|".join(fnmatch.translate(g) for g in self.models)
            model = re.compile(globs) if self.models else _NEVER
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_allow", Decision(True, self.name, "allowed"))
        object.__setattr__(self, "_deny", Decision(False, self.name, "denied_by_rule"))

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule decides a request for the normalized `path`."""
        if self.methods is not None and method not in self.methods:
            return False
        if self._model is None:
            return self._any_path.fullmatch(path) is not None
        for pattern in self.paths:
            if pattern.captures_model:
                found = pattern.regex.fullmatch(path)
                if found is not None and self._model.match(found.group(1)) is not None:
                    return True
        return False

    def decision(self, role: str, subject: str) -> Decision:
        """This rule's answer for an identity, once it matched the request."""
        if role in self.roles and (self.subjects is None or subject in self.subjects):
            return self._allow
        return self._deny


@dataclass(frozen=True)
class Policy:
    """Ordered rules: the first rule that matches decides; no match is a denial."""

    rules: tuple[Rule, ...] = ()

    def decide(self, role: str, subject: str, method: str, uri: str) -> Decision:
        """Decide for an identity already authenticated; `uri` is the raw `X-Original-URI`."""
        path = normalize_path(uri)
        if path is None:
            return _BAD_PATH
        for rule in self.rules:
            if rule.matches(method, path):
                # First match wins: a matching rule that does not list this identity denies.
                return rule.decision(role, subject)
        return _NO_RULE


# ---------------------------------------------------------------------------------------------
# Defaults and configuration
# ---------------------------------------------------------------------------------------------

_AGENTS = ["agent_reasoning", "agent_fast", "agi"]

# The `policy:` list config.yaml would hold for the built-in roles. Every rule lists admin, so
# admin's catch-all can come last: a rule that matches denies every role it does not list.
DEFAULT_RULES: Final[list[dict[str, Any]]] = [
    {
        "name": "chat",
        "paths": ["/llm/chat/completions"],
        "methods": ["POST"],
        "roles": [*_AGENTS, "user", "admin"],
    },
    {
        "name": "inference",
        "paths": ["/llm/chat/completions", "/llm/completions", "/llm/embeddings"],
        "methods": ["GET", "POST"],
        "roles": [*_AGENTS, "admin"],
    },
    {
        "name": "model list",
        "paths": ["/llm/models"],
        "methods": ["GET"],
        "roles": [*_AGENTS, "monitoring", "user", "admin"],
    },
    {
        "name": "model details",
        "paths": ["/llm/models/{model}"],
        "methods": ["GET"],
        "roles": [*_AGENTS, "monitoring", "admin"],
    },
    {
        "name": "monitoring",
        "paths": ["/llm/health", "/llm/metrics"],
        "methods": ["GET"],
        "roles": ["monitoring", "admin"],
    },
    {
        "name": "admin",
        "paths": ["/**"],
        "roles": ["admin"],
    },
]

RULE_KEYS: Final = ("name", "paths", "methods", "models", "roles", "subjects")


def parse_policy(data: object, src: YamlSource, key: str = "policy", *,
                 roles: Collection[str]) -> tuple[Policy, list[Problem]]:
    """Check and compile the rule list `data` found at `key` of `src`.

    None means DEFAULT_RULES, narrowed to the configured `roles` (a default never grants a
    role that the configuration does not define). An empty list denies everything. With
    any problem the policy returned is empty, so it denies everything if used anyway.
    """
    if data is None:
        policy, problems = _parse_rules(DEFAULT_RULES, src, key, None)
        known = frozenset(roles)
        narrowed = tuple(replace(r, roles=r.roles & known) for r in policy.rules)
        return Policy(narrowed), problems
    if not isinstance(data, list):
        return Policy(), [src.problem(key, "a list of rules", describe(data))]
    return _parse_rules(data, src, key, frozenset(roles))


def _parse_rules(data: list[Any], src: YamlSource, key: str,
                 roles: frozenset[str] | None) -> tuple[Policy, list[Problem]]:
    problems: list[Problem] = []
    rules: list[Rule] = []
    named: dict[str, str] = {}
    for i, item in enumerate(data):
        at = f"{key}[{i}]"
        rule = _parse_rule(item, i, src, at, roles, problems)
        if rule is None:
            continue
        if rule.name in named:
            problems.append(src.problem(f"{at}.name", "a name used by one rule",
                                        f"the name of {named[rule.name]}"))
        named.setdefault(rule.name, at)
        rules.append(rule)
    return (Policy(), problems) if problems else (Policy(tuple(rules)), problems)


def _parse_rule(item: Any, index: int, src: YamlSource, at: str, roles: frozenset[str] | None,
                problems: list[Problem]) -> Rule | None:
    if not isinstance(item, dict):
        problems.append(src.problem(at, "a rule (a mapping with paths and roles)", describe(item)))
        return None
    before = len(problems)

    def report(name: str, expected: str, found: str) -> None:
        problems.append(src.problem(f"{at}.{name}", expected, found))

    name = item.get("name", f"rule {index}")
    if not (isinstance(name, str) and name.strip() and _RULE_NAME.fullmatch(name)):
        report("name", "a rule name of 1 to 64 printable characters", describe(name))
    paths = _patterns(item.get("paths"), report)
    methods = _strings(item, "methods", "an HTTP method like GET", report,
                       lambda m: _METHOD.fullmatch(m) is not None)
    models = _strings(item, "models", "a model glob without /", report, lambda m: "/" not in m)
    if models is not None and paths is not None and not any(p.captures_model for p in paths):
        report("models", "models only with a {model} path", "no {model} in paths")
    known = "one of " + ", ".join(sorted(roles or ()))
    role_list = _strings(item, "roles", known, report,
                         lambda r: roles is None or r in roles, required=True)
    subjects = _strings(item, "subjects", "a username of letters, digits and ._@+-", report,
                        lambda s: USERNAME.fullmatch(s) is not None)
    for key in item:
        if key not in RULE_KEYS:
            report(str(key), "a known key", "an unknown key")
    if len(problems) > before or paths is None or role_list is None:
        return None
    return Rule(
        name=name, paths=paths,
        methods=None if methods is None else frozenset(methods),
        models=None if models is None else tuple(models),
        roles=frozenset(role_list),
        subjects=None if subjects is None else frozenset(subjects),
    )


Report = Callable[[str, str, str], None]


def _patterns(value: Any, report: Report) -> tuple[PathPattern, ...] | None:
    if not (isinstance(value, list) and value):
        report("paths", "a non-empty list of path patterns", describe(value))
        return None
    compiled: list[PathPattern] = []
    for j, pattern in enumerate(value):
        try:
            if not isinstance(pattern, str):
                raise PatternError("a path pattern starting with /")
            compiled.append(compile_pattern(pattern))
        except PatternError as exc:
            report(f"paths[{j}]", str(exc), describe(pattern))
    return tuple(compiled) if len(compiled) == len(value) else None


def _strings(item: dict[Any, Any], name: str, expected: str, report: Report,
             check: Callable[[str], bool], *, required: bool = False) -> list[str] | None:
    """The non-empty list of `expected` strings at `name`; None if absent or not valid."""
    if name not in item:
        if required:
            report(name, f"a non-empty list, each {expected}", "nothing")
        return None
    value = item[name]
    if not (isinstance(value, list) and value):
        report(name, f"a non-empty list, each {expected}", describe(value))
        return None
    bad = [j for j, v in enumerate(value) if not (isinstance(v, str) and v.strip() and check(v))]
    for j in bad:
        report(f"{name}[{j}]", expected, describe(value[j]))
    return None if bad else list(value)
