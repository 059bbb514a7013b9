"""policy.py: path normalization, pattern semantics, the default rules, config problems, and
properties (default deny, first match wins) checked against a plain reference implementation."""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsec_aio.config import DEFAULT_ROLES
from llmsec_aio.policy import (
    DEFAULT_RULES,
    MAX_PATH,
    PatternError,
    Policy,
    Rule,
    compile_pattern,
    normalize_path,
    parse_policy,
)
from llmsec_aio.yamlsource import YamlSource, load_yaml

AGENTS = {"agent_reasoning", "agent_fast", "agi"}
ALL_ROLES = [*DEFAULT_ROLES, "intruder"]


def default_policy(roles: set[str] | None = None) -> Policy:
    policy, problems = parse_policy(None, YamlSource("config.yaml", None),
                                    roles=set(DEFAULT_ROLES) if roles is None else roles)
    assert problems == []
    return policy


# ---------------------------------------------------------------------------------------------
# normalize_path
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("uri", "expected"), [
    ("/", "/"),
    ("/llm/chat/completions", "/llm/chat/completions"),
    ("/llm//chat///completions", "/llm/chat/completions"),
    ("//llm/models", "/llm/models"),
    ("/llm/./models", "/llm/models"),
    ("/llm/models/.", "/llm/models"),
    ("/llm/x/../models", "/llm/models"),
    ("/llm/models/", "/llm/models"),
    ("/llm/models//", "/llm/models"),
    ("/llm/models?limit=5", "/llm/models"),
    ("/llm/models?next=/../../admin", "/llm/models"),
    ("/llm/models#frag", "/llm/models"),
    ("/llm/models#frag?x", "/llm/models"),
    ("/llm/models/?", "/llm/models"),
    ("/llm/%2e%2e/x", "/x"),
    ("/llm/%2E%2e/x", "/x"),
    ("/llm/%2E/models", "/llm/models"),
    ("/llm/chat%2fcompletions", "/llm/chat/completions"),
    ("/llm/chat%2Fcompletions", "/llm/chat/completions"),
    ("/llm/models/llama3%3A8b", "/llm/models/llama3:8b"),
    ("/llm/models/a%3fb", "/llm/models/a?b"),  # a decoded ? is part of the path, as in nginx
    ("/llm/models/a%23b", "/llm/models/a#b"),
    ("/llm/a+b", "/llm/a+b"),  # + is not a space in a path
    ("/llm/%C3%A9t%C3%A9", "/llm/été"),
    ("/llm/été", "/llm/été"),
    ("/llm\\..\\admin", "/llm\\..\\admin"),  # backslash is an ordinary character
    ("/llm/\\../x", "/llm/\\../x"),
    ("/llm/.../x", "/llm/.../x"),
    ("/llm/.hidden", "/llm/.hidden"),
    ("/" + "a" * (MAX_PATH - 1), "/" + "a" * (MAX_PATH - 1)),
    ("/a?" + "q" * 10_000, "/a"),  # only the path counts towards the limit
])
def test_normalize_path(uri: str, expected: str) -> None:
    assert normalize_path(uri) == expected


@pytest.mark.parametrize("uri", [
    "", "llm/models", "*", "http://example.com/llm/models", "?/llm/models", "%2fllm/models",
    "/..", "/../llm/models", "/llm/../..", "/llm/../../x", "/%2e%2e/x", "/llm/%2e%2e/%2e%2e/x",
    "/llm/%252e%252e/x", "/llm/%2525", "/llm/%25", "/llm/100%", "/llm/%zz", "/llm/%2",
    "/llm/%ff", "/llm/%C3", "/llm/%C3%28", "/llm/%ED%A0%80", "/llm/\udcff",
    "/llm/%00", "/llm/\x00", "/llm/%0a", "/llm/a\tb", "/llm/%7f", "/llm/\x7f", "/llm/%1b[31m",
    "/" + "a" * MAX_PATH,
])
def test_normalize_path_refuses(uri: str) -> None:
    assert normalize_path(uri) is None


@given(st.text(alphabet="/.a%2eEfF5?#\\", max_size=40))
def test_normalized_paths_are_canonical(uri: str) -> None:
    path = normalize_path(uri)
    if path is None:
        return
    assert path.startswith("/") and "%" not in path and "//" not in path
    segments = path.split("/")[1:]
    assert path == "/" or all(s not in ("", ".", "..") for s in segments)
    if "?" not in path and "#" not in path:
        assert normalize_path(path) == path


# ---------------------------------------------------------------------------------------------
# Patterns
# ---------------------------------------------------------------------------------------------

def matches(pattern: str, path: str) -> bool:
    return compile_pattern(pattern).regex.fullmatch(path) is not None


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("/llm/models", "/llm/models", True),
    ("/llm/models", "/llm/models/x", False),
    ("/llm/models", "/llm/model", False),
    ("/llm/models", "/LLM/models", False),
    ("/llm/models/", "/llm/models", True),  # the pattern is normalized like a path
    ("//llm/./models", "/llm/models", True),
    ("/", "/", True),
    ("/", "/x", False),
    ("/llm/*", "/llm/models", True),
    ("/llm/*", "/llm", False),
    ("/llm/*", "/llm/models/x", False),
    ("/*", "/", False),
    ("/llm/chat*", "/llm/chat", True),
    ("/llm/chat*", "/llm/chatty", True),
    ("/llm/chat*", "/llm/chat/x", False),
    ("/llm/*.json", "/llm/a.json", True),
    ("/llm/*.json", "/llm/ajson", False),  # a dot in a pattern is literal
    ("/llm/a*b*c", "/llm/abc", True),
    ("/llm/a*b*c", "/llm/axxbyybzzc", True),
    ("/llm/a*b*c", "/llm/axxbyyc", True),
    ("/llm/a*b*c", "/llm/acb", False),
    ("/llm/**", "/llm", True),
    ("/llm/**", "/llm/models", True),
    ("/llm/**", "/llm/models/a/b/c", True),
    ("/llm/**", "/llmx", False),
    ("/llm/**", "/", False),
    ("/**", "/", True),
    ("/**", "/anything/at/all", True),
    ("/**/models", "/models", True),
    ("/**/models", "/llm/v1/models", True),
    ("/**/models", "/llm/models/x", False),
    ("/llm/**/x/*", "/llm/x/y", True),
    ("/llm/**/x/*", "/llm/a/b/x/y", True),
    ("/llm/**/x/*", "/llm/a/b/x", False),
    ("/llm/models/{model}", "/llm/models/llama3:8b", True),
    ("/llm/models/{model}", "/llm/models", False),
    ("/llm/models/{model}", "/llm/models/a/b", False),
    ("/llm/{model}/info", "/llm/m/info", True),
])
def test_pattern_semantics(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


def test_model_is_captured() -> None:
    pattern = compile_pattern("/llm/**/{model}/info")
    found = pattern.regex.fullmatch("/llm/a/b/qwen2.5:7b/info")
    assert pattern.captures_model and found is not None and found.group(1) == "qwen2.5:7b"
    assert not compile_pattern("/llm/models").captures_model


@pytest.mark.parametrize(("pattern", "expected"), [
    ("llm/models", "a path pattern starting with /"),
    ("", "a path pattern starting with /"),
    ("*/models", "a path pattern starting with /"),
    ("/llm/../admin", "a path pattern without .. segments"),
    ("/..", "a path pattern without .. segments"),
    ("/llm/a**", "** only as a whole segment"),
    ("/llm/***", "** only as a whole segment"),
    ("/llm/x{model}", "{model} only as a whole segment (the only placeholder)"),
    ("/llm/{name}", "{model} only as a whole segment (the only placeholder)"),
    ("/llm/{model}/{model}", "at most one {model} per pattern"),
    ("/**/x/**", "at most one ** per pattern"),
    ("/llm/a%2fb", "a decoded path pattern without %, ?, # or control characters"),
    ("/llm/models?x=1", "a decoded path pattern without %, ?, # or control characters"),
    ("/llm/models#x", "a decoded path pattern without %, ?, # or control characters"),
    ("/llm/\x00", "a decoded path pattern without %, ?, # or control characters"),
    ("/" + "a" * MAX_PATH, f"a path pattern of at most {MAX_PATH} characters"),
])
def test_bad_patterns(pattern: str, expected: str) -> None:
    with pytest.raises(PatternError) as info:
        compile_pattern(pattern)
    assert str(info.value) == expected


def test_pattern_matching_stays_linear_on_hostile_paths() -> None:
    stars = compile_pattern("/**/a*a*a*a*a*b/{model}")
    path = "/" + "/".join(["a" * 200] * 10) + "/" + "a" * 60
    started = time.perf_counter()
    assert stars.regex.fullmatch(path[:MAX_PATH]) is None
    assert time.perf_counter() - started < 0.05


def test_get_brings_head_and_methods_are_upper_case() -> None:
    rule = Rule("r", (compile_pattern("/x"),), methods=frozenset({"get", "Post"}), roles=frozenset({"a"}))
    assert rule.methods == frozenset({"GET", "HEAD", "POST"})
    assert rule.matches("HEAD", "/x") and rule.matches("POST", "/x") and not rule.matches("PUT", "/x")
    assert not Rule("r", (compile_pattern("/x"),), methods=frozenset({"POST"})).matches("HEAD", "/x")
    assert Rule("r", (compile_pattern("/x"),)).matches("BREW", "/x")


def test_models_filter_the_captured_model() -> None:
    rule = Rule("r", (compile_pattern("/m"), compile_pattern("/m/{model}")),
                models=("llama3*", "qwen2.5:7b"), roles=frozenset({"a"}))
    assert rule.matches("GET", "/m/llama3:8b") and rule.matches("GET", "/m/llama3")
    assert rule.matches("GET", "/m/qwen2.5:7b")
    assert not rule.matches("GET", "/m/Llama3")  # case-sensitive
    assert not rule.matches("GET", "/m/qwen2x5:7b")  # a dot in a glob is literal
    assert not rule.matches("GET", "/m/mistral")
    assert not rule.matches("GET", "/m")  # a path without a captured model never matches
    assert not Rule("r", (compile_pattern("/m/{model}"),), models=()).matches("GET", "/m/x")


def test_subjects_narrow_the_roles() -> None:
    rule = Rule("r", (compile_pattern("/**"),), roles=frozenset({"user"}),
                subjects=frozenset({"alice"}))
    policy = Policy((rule,))
    assert policy.decide("user", "alice", "GET", "/x").allowed
    assert policy.decide("user", "bob", "GET", "/x").reason == "denied_by_rule"
    assert policy.decide("admin", "alice", "GET", "/x").reason == "denied_by_rule"


# ---------------------------------------------------------------------------------------------
# The default rules
# ---------------------------------------------------------------------------------------------

GRANTS: dict[tuple[str, str], set[str]] = {
    ("POST", "/llm/chat/completions"): AGENTS | {"user"},
    ("GET", "/llm/chat/completions"): AGENTS,
    ("GET", "/llm/completions"): AGENTS,
    ("POST", "/llm/completions"): AGENTS,
    ("GET", "/llm/embeddings"): AGENTS,
    ("POST", "/llm/embeddings"): AGENTS,
    ("GET", "/llm/models"): AGENTS | {"monitoring", "user"},
    ("GET", "/llm/models/llama3:8b"): AGENTS | {"monitoring"},
    ("GET", "/llm/health"): {"monitoring"},
    ("GET", "/llm/metrics"): {"monitoring"},
}
ROUTES = sorted({path for _, path in GRANTS} | {
    "/", "/llm", "/llm/admin/x", "/llm/models/a/b", "/llm/unknown", "/v1/models", "/llm/login",
})
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@pytest.mark.parametrize("role", ALL_ROLES)
def test_default_policy_grants_exactly_the_listed_routes(role: str) -> None:
    policy = default_policy()
    for path in ROUTES:
        for method in METHODS:
            granted = GRANTS.get(("GET" if method == "HEAD" else method, path), set())
            expected = role == "admin" or role in granted
            decision = policy.decide(role, "someone", method, path)
            assert decision.allowed is expected, (role, method, path, decision)
            assert decision.reason == ("allowed" if expected else "denied_by_rule")


@pytest.mark.parametrize(("role", "method", "uri"), [
    ("agent_fast", "GET", "/llm/admin/x"),
    ("agi", "POST", "/llm/models"),
    ("monitoring", "POST", "/llm/chat/completions"),
    ("monitoring", "GET", "/llm/embeddings"),
    ("user", "POST", "/llm/embeddings"),
    ("user", "GET", "/llm/models/llama3:8b"),
    ("user", "GET", "/llm/health"),
    ("intruder", "GET", "/llm/models"),
    ("", "GET", "/llm/models"),
    ("ADMIN", "GET", "/llm/models"),
    ("agent_fast", "get", "/llm/models"),  # methods are case-sensitive, as in HTTP
])
def test_default_policy_denies(role: str, method: str, uri: str) -> None:
    assert not default_policy().decide(role, "someone", method, uri).allowed


def test_default_decisions_name_the_rule() -> None:
    policy = default_policy()
    assert [r.name for r in policy.rules] == [
        "chat", "inference", "model list", "model details", "monitoring", "admin"]
    decide = policy.decide
    assert decide("user", "u", "POST", "/llm/chat/completions") == decide(
        "user", "u", "POST", "/llm/chat/completions?stream=true")
    allowed = decide("user", "u", "POST", "/llm/chat/completions")
    assert (allowed.allowed, allowed.rule, allowed.reason) == (True, "chat", "allowed")
    denied = decide("monitoring", "m", "POST", "/llm/chat/completions")
    assert (denied.allowed, denied.rule, denied.reason) == (False, "chat", "denied_by_rule")
    admin = decide("admin", "root", "DELETE", "/llm/models/x")
    assert (admin.allowed, admin.rule, admin.reason) == (True, "admin", "allowed")
    bad = decide("admin", "root", "GET", "/llm/%252e%252e")
    assert (bad.allowed, bad.rule, bad.reason) == (False, None, "bad_path")


@pytest.mark.parametrize(("role", "method", "uri"), [
    ("agent_fast", "POST", "/llm/chat/completions/../../admin"),
    ("agent_fast", "POST", "/llm/chat/completions/..%2f..%2fadmin"),
    ("agent_fast", "POST", "/llm/chat/completions/%2e%2e/%2e%2e/admin"),
    ("agent_fast", "GET", "/llm/%2e%2e/x"),
    ("agent_fast", "GET", "/llm/models/%2e%2e/%2e%2e/admin"),
    ("agent_fast", "GET", "/llm/models/..%252f..%252fadmin"),
    ("agent_fast", "GET", "/llm/models/x%2f..%2f..%2fadmin"),
    ("user", "POST", "/llm/chat/completions%2f..%2f..%2fembeddings"),
    ("user", "POST", "/llm/embeddings?/llm/chat/completions"),
    ("user", "POST", "/llm/embeddings#/llm/chat/completions"),
    ("user", "POST", "/llm/chat/completions%00/../../embeddings"),
    ("user", "POST", "/llm/chat/completions\\..\\..\\embeddings"),
    ("monitoring", "GET", "/llm/health/../chat/completions"),
    ("monitoring", "GET", "/llm/models/../../../llm/chat/completions"),
])
def test_encoding_tricks_do_not_slip_past_a_rule(role: str, method: str, uri: str) -> None:
    decision = default_policy().decide(role, "someone", method, uri)
    assert not decision.allowed, (uri, normalize_path(uri), decision)


@pytest.mark.parametrize("uri", [
    "/llm//chat/completions", "/llm/chat//completions/", "/llm/./chat/completions",
    "/llm/x/../chat/completions", "/llm/chat%2fcompletions", "/llm/%63hat/completions",
])
def test_equivalent_spellings_get_the_same_answer(uri: str) -> None:
    policy = default_policy()
    for role in ALL_ROLES:
        assert policy.decide(role, "s", "POST", uri) == policy.decide(
            role, "s", "POST", "/llm/chat/completions")


def test_defaults_are_narrowed_to_the_configured_roles() -> None:
    policy = default_policy({"user", "admin"})
    assert all(rule.roles <= {"user", "admin"} for rule in policy.rules)
    assert [r.name for r in policy.rules] == [r["name"] for r in DEFAULT_RULES]
    assert policy.decide("user", "u", "POST", "/llm/chat/completions").allowed
    assert not policy.decide("agent_fast", "a", "POST", "/llm/chat/completions").allowed
    assert not policy.decide("monitoring", "m", "GET", "/llm/health").allowed


def test_default_rules_are_what_a_config_file_would_hold(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"policy": DEFAULT_RULES}, sort_keys=False))
    src = load_yaml(path)
    written, problems = parse_policy(src.data["policy"], src, roles=DEFAULT_ROLES)
    assert problems == [] and written == default_policy()


# ---------------------------------------------------------------------------------------------
# parse_policy: problems with file, line and key
# ---------------------------------------------------------------------------------------------

def parse(tmp_path: Path, text: str, roles: set[str] | None = None) -> tuple[Policy, list[str]]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    src = load_yaml(path)
    data = src.data.get("policy") if isinstance(src.data, dict) else None
    policy, problems = parse_policy(data, src, roles=set(DEFAULT_ROLES) if roles is None else roles)
    return policy, [str(p).replace(str(path), "F") for p in problems]


def test_a_valid_policy(tmp_path: Path) -> None:
    policy, problems = parse(tmp_path, """\
policy:
  - name: qwen only
    paths: ["/llm/models/{model}", /llm/chat/completions]
    methods: [get]
    models: ["qwen*"]
    roles: [user]
    subjects: [alice]
  - paths: ["/llm/**"]
    roles: [admin, user]
""")
    assert problems == []
    first, second = policy.rules
    assert (first.name, second.name) == ("qwen only", "rule 1")
    assert first.methods == frozenset({"GET", "HEAD"}) and first.models == ("qwen*",)
    assert first.subjects == frozenset({"alice"}) and second.methods is None and second.subjects is None
    assert policy.decide("user", "alice", "GET", "/llm/models/qwen2.5").rule == "qwen only"
    assert policy.decide("user", "bob", "GET", "/llm/models/qwen2.5").reason == "denied_by_rule"
    assert policy.decide("user", "bob", "GET", "/llm/models/llama3").rule == "rule 1"


def test_an_empty_policy_denies_everything(tmp_path: Path) -> None:
    policy, problems = parse(tmp_path, "policy: []\n")
    assert problems == [] and policy == Policy(())
    decision = policy.decide("admin", "root", "GET", "/llm/models")
    assert (decision.allowed, decision.rule, decision.reason) == (False, None, "no_rule")


def test_no_policy_key_means_the_defaults(tmp_path: Path) -> None:
    policy, problems = parse(tmp_path, "leeway: 5\n")
    assert problems == [] and policy == default_policy()


def test_policy_must_be_a_list(tmp_path: Path) -> None:
    policy, problems = parse(tmp_path, "leeway: 5\npolicy:\n  paths: [/x]\n")
    assert problems == ["F:2: policy: expected a list of rules, found a mapping"]
    assert policy == Policy(())


def test_every_rule_problem_is_reported_with_line_and_key(tmp_path: Path) -> None:
    _, problems = parse(tmp_path, """\
policy:
  - name: chat
    paths: [/llm/chat/completions]
    methods: [POST, "GE T", 7]
    roles: [agent_fast, wizard]
  - paths:
      - llm/relative
      - /llm/a**b
      - /llm/x{model}
      - /llm/../x
      - /llm/**/y/**
      - "/llm/{model}/{model}"
      - /llm/a%2fb
      - 42
    roles: admin
  - roles: [admin]
    colour: blue
  - just a string
  - name: ""
    paths: []
    methods: []
    models: [llama*, "a/b"]
    roles: []
    subjects: [""]
""")
    roles = "one of admin, agent_fast, agent_reasoning, agi, monitoring, user"
    assert problems == [
        "F:4: policy[0].methods[1]: expected an HTTP method like GET, found string 'GE T'",
        "F:4: policy[0].methods[2]: expected an HTTP method like GET, found number 7",
        f"F:5: policy[0].roles[1]: expected {roles}, found string 'wizard'",
        "F:7: policy[1].paths[0]: expected a path pattern starting with /, found string 'llm/relative'",
        "F:8: policy[1].paths[1]: expected ** only as a whole segment, found string '/llm/a**b'",
        "F:9: policy[1].paths[2]: expected {model} only as a whole segment (the only placeholder), "
        "found string '/llm/x{model}'",
        "F:10: policy[1].paths[3]: expected a path pattern without .. segments, found string '/llm/../x'",
        "F:11: policy[1].paths[4]: expected at most one ** per pattern, found string '/llm/**/y/**'",
        "F:12: policy[1].paths[5]: expected at most one {model} per pattern, "
        "found string '/llm/{model}/{model}'",
        "F:13: policy[1].paths[6]: expected a decoded path pattern without %, ?, # or control "
        "characters, found string '/llm/a%2fb'",
        "F:14: policy[1].paths[7]: expected a path pattern starting with /, found number 42",
        f"F:15: policy[1].roles: expected a non-empty list, each {roles}, found string 'admin'",
        "F:16: policy[2].paths: expected a non-empty list of path patterns, found nothing",
        "F:17: policy[2].colour: expected a known key, found an unknown key",
        "F:18: policy[3]: expected a rule (a mapping with paths and roles), found string 'just a string'",
        "F:19: policy[4].name: expected a rule name of 1 to 64 printable characters, found string ''",
        "F:20: policy[4].paths: expected a non-empty list of path patterns, found a list of 0",
        "F:21: policy[4].methods: expected a non-empty list, each an HTTP method like GET, "
        "found a list of 0",
        "F:22: policy[4].models[1]: expected a model glob without /, found string 'a/b'",
        f"F:23: policy[4].roles: expected a non-empty list, each {roles}, found a list of 0",
        "F:24: policy[4].subjects[0]: expected a username of letters, digits and ._@+-, found string ''",
    ]


def test_models_need_a_model_path_and_roles_are_required(tmp_path: Path) -> None:
    _, problems = parse(tmp_path, """\
policy:
  - paths: [/llm/models]
    models: [llama*]
  - name: x
    paths: [/a]
    roles: [admin]
  - name: x
    paths: [/b]
    roles: [admin]
""")
    assert problems == [
        "F:3: policy[0].models: expected models only with a {model} path, found no {model} in paths",
        "F:2: policy[0].roles: expected a non-empty list, each one of admin, agent_fast, "
        "agent_reasoning, agi, monitoring, user, found nothing",
        "F:7: policy[2].name: expected a name used by one rule, found the name of policy[1]",
    ]


def test_problems_leave_an_empty_policy(tmp_path: Path) -> None:
    policy, problems = parse(tmp_path, "policy:\n  - {paths: [/a], roles: [admin]}\n"
                                       "  - {paths: [/b], roles: [nobody]}\n")
    assert len(problems) == 1 and policy == Policy(())


# ---------------------------------------------------------------------------------------------
# Properties against a reference implementation
# ---------------------------------------------------------------------------------------------

LITERALS = ["a", "b", "ab", "ba", "c"]
PATTERN_SEGMENTS = ["a", "b", "ab", "*", "a*", "*b", "**", "{model}"]
REQUEST_ROLES = ["r1", "r2", "r3", "r4"]
REQUEST_SUBJECTS = ["s1", "s2", "s3"]
REQUEST_METHODS = ["GET", "HEAD", "POST", "DELETE", "PUT"]


@dataclass(frozen=True)
class RuleSpec:
    """A rule as plain data, for the reference implementation; `rule()` builds the real one."""

    name: str
    patterns: tuple[tuple[str, ...], ...]
    methods: frozenset[str] | None
    models: tuple[str, ...] | None
    roles: frozenset[str]
    subjects: frozenset[str] | None

    def rule(self) -> Rule:
        paths = tuple(compile_pattern("/" + "/".join(p)) for p in self.patterns)
        return Rule(self.name, paths, self.methods, self.models, self.roles, self.subjects)


@dataclass(frozen=True)
class Request:
    role: str
    subject: str
    method: str
    segments: tuple[str, ...]
    uri: str  # the segments, spelled with slashes, dots, escapes and a query that change nothing


def reference_captures(pattern: tuple[str, ...], segments: tuple[str, ...]) -> list[str | None]:
    """Every way `pattern` matches `segments`, as the {model} capture (None if none)."""
    if not pattern:
        return [] if segments else [None]
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return [c for i in range(len(segments) + 1) for c in reference_captures(rest, segments[i:])]
    if not segments:
        return []
    if head == "{model}":
        return [segments[0] for _ in reference_captures(rest, segments[1:])]
    if fnmatch.fnmatchcase(segments[0], head):
        return reference_captures(rest, segments[1:])
    return []


def reference_matches(spec: RuleSpec, request: Request) -> bool:
    if spec.methods is not None:
        methods = spec.methods | ({"HEAD"} if "GET" in spec.methods else set())
        if request.method not in methods:
            return False
    captures = [c for p in spec.patterns for c in reference_captures(p, request.segments)]
    if spec.models is None:
        return bool(captures)
    return any(c is not None and any(fnmatch.fnmatchcase(c, g) for g in spec.models)
               for c in captures)


def reference_decide(specs: list[RuleSpec], request: Request) -> tuple[bool, str | None, str]:
    for spec in specs:
        if reference_matches(spec, request):
            allowed = request.role in spec.roles and (
                spec.subjects is None or request.subject in spec.subjects)
            return allowed, spec.name, "allowed" if allowed else "denied_by_rule"
    return False, None, "no_rule"


@st.composite
def patterns(draw: st.DrawFn) -> tuple[str, ...]:
    segments = draw(st.lists(st.sampled_from(PATTERN_SEGMENTS), max_size=3).filter(
        lambda s: s.count("**") <= 1 and s.count("{model}") <= 1))
    return tuple(segments)


@st.composite
def rule_specs(draw: st.DrawFn, name: str = "r") -> RuleSpec:
    paths = tuple(draw(st.lists(patterns(), min_size=1, max_size=3)))
    methods = draw(st.none() | st.frozensets(st.sampled_from(["GET", "POST", "DELETE"]), min_size=1))
    models = None
    if any("{model}" in p for p in paths) and draw(st.booleans()):
        models = tuple(draw(st.lists(st.sampled_from(["a*", "b", "*", "x"]), min_size=1, max_size=2)))
    roles = draw(st.frozensets(st.sampled_from(REQUEST_ROLES[:3])))
    subjects = draw(st.none() | st.frozensets(st.sampled_from(REQUEST_SUBJECTS[:2]), min_size=1))
    return RuleSpec(name, paths, methods, models, roles, subjects)


@st.composite
def rule_lists(draw: st.DrawFn) -> list[RuleSpec]:
    count = draw(st.integers(min_value=0, max_value=6))
    return [draw(rule_specs(f"rule {i}")) for i in range(count)]


def _spell(draw: st.DrawFn, segment: str) -> str:
    if draw(st.booleans()):
        return segment
    return "".join(f"%{ord(c):02{draw(st.sampled_from('xX'))}}" for c in segment)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    segments = tuple(draw(st.lists(st.sampled_from(LITERALS), max_size=3)))
    uri = ""
    for segment in segments:
        detour = draw(st.sampled_from(["", "/.", "//", "/zz/..", "/%2e", "/zz/%2E%2e", "/zz%2f.."]))
        uri += detour + "/" + _spell(draw, segment)
    uri += draw(st.sampled_from(["", "/", "/.", "//"]))
    uri = uri or "/"
    uri += draw(st.sampled_from(["", "?", "?q=/../..", "#x", "?a=%zz#b"]))
    return Request(draw(st.sampled_from(REQUEST_ROLES)), draw(st.sampled_from(REQUEST_SUBJECTS)),
                   draw(st.sampled_from(REQUEST_METHODS)), segments, uri)


@given(requests())
def test_request_spellings_normalize_to_their_segments(request: Request) -> None:
    assert normalize_path(request.uri) == "/" + "/".join(request.segments)


@given(st.text(max_size=60), st.sampled_from(REQUEST_ROLES), st.sampled_from(REQUEST_METHODS))
def test_empty_policy_denies_everything(uri: str, role: str, method: str) -> None:
    decision = Policy(()).decide(role, "s1", method, uri)
    assert not decision.allowed and decision.rule is None
    assert decision.reason == ("bad_path" if normalize_path(uri) is None else "no_rule")


@settings(max_examples=200)
@given(rule_lists(), requests())
def test_unmatched_requests_are_denied(specs: list[RuleSpec], request: Request) -> None:
    decision = Policy(tuple(s.rule() for s in specs)).decide(
        request.role, request.subject, request.method, request.uri)
    if not any(reference_matches(s, request) for s in specs):
        assert (decision.allowed, decision.rule, decision.reason) == (False, None, "no_rule")
    if decision.allowed:
        assert decision.rule is not None and decision.reason == "allowed"


@settings(max_examples=200)
@given(rule_lists(), requests())
def test_first_matching_rule_decides(specs: list[RuleSpec], request: Request) -> None:
    decision = Policy(tuple(s.rule() for s in specs)).decide(
        request.role, request.subject, request.method, request.uri)
    assert (decision.allowed, decision.rule, decision.reason) == reference_decide(specs, request)


@settings(max_examples=200)
@given(rule_lists(), requests(), st.data())
def test_a_prepended_matching_rule_decides(specs: list[RuleSpec], request: Request,
                                           data: st.DataObject) -> None:
    # A rule made to match: the request's own path, or a prefix of it with **.
    cut = data.draw(st.integers(min_value=0, max_value=len(request.segments)))
    pattern = request.segments if data.draw(st.booleans()) else (*request.segments[:cut], "**")
    roles = data.draw(st.frozensets(st.sampled_from(REQUEST_ROLES)))
    first = RuleSpec("first", (pattern,), frozenset({request.method}), None, roles, None)
    assert reference_matches(first, request)
    decision = Policy(tuple(s.rule() for s in [first, *specs])).decide(
        request.role, request.subject, request.method, request.uri)
    assert decision.rule == "first" and decision.allowed is (request.role in roles)
