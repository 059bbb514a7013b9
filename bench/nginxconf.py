"""Bench variants of nginx.conf.example: its real /llm/ auth_request block, with the LLM answer
served by nginx itself (through try_files, so the auth check still runs), plus the floors and
the opt-in decision micro-cache."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

from tests.support.net import free_port
from tests.support.nginx import EXAMPLE_CONF, NginxInstance, microcache_substitutions, running_nginx

from .wrk import BenchError

PROTECTED_PATH = "/llm/models"
OK_BODY = "ok"
CACHE_DIR = "llmsec_decisions"

# Each pattern must match exactly one live (uncommented) line of the example.
_LLM_PROXY = re.compile(r"^(?P<indent>[ \t]*)proxy_pass http://llm_backend/v1/;[ \t]*$", re.M)
_VALIDATE_PROXY = re.compile(r"^(?P<indent>[ \t]*)proxy_pass http://llmsec_gateway/validate;[ \t]*$", re.M)
_UNAUTHORIZED = re.compile(r"^(?P<indent>[ \t]*)location @llmsec_unauthorized \{[ \t]*$", re.M)


class Variant(Enum):
    """GATEWAY also serves Floor A (its upstream then points at bench/floor_app.py)."""

    GATEWAY = "gateway"
    FLOOR_B = "floor_b"
    MICROCACHE = "microcache"


def _replace_once(text: str, pattern: re.Pattern[str], build: Callable[[str, str], str]) -> str:
    """Replace the single live line `pattern` matches by build(indent, line)."""
    matches = list(pattern.finditer(text))
    if len(matches) != 1:
        raise BenchError(f"nginx.conf.example: expected one live line matching {pattern.pattern!r}, "
                         f"found {len(matches)}")
    match = matches[0]
    replacement = build(match["indent"], match[0].strip())
    return text[:match.start()] + replacement + text[match.end():]


def _answer_from_nginx(text: str) -> str:
    # A `return` in /llm/ itself would run in the rewrite phase, before auth_request; try_files
    # runs after the access phase, so the named location answers only once auth said 2xx.
    text = _replace_once(text, _LLM_PROXY, lambda ind, _: f"{ind}try_files /nonexistent @bench_ok;")
    return _replace_once(text, _UNAUTHORIZED, lambda ind, line: (
        f'{ind}location @bench_ok {{\n{ind}    return 200 "{OK_BODY}";\n{ind}}}\n\n{ind}{line}'))


def _floor_b(text: str) -> str:
    return _replace_once(text, _VALIDATE_PROXY, lambda ind, _: f"{ind}return 204;")


def _microcache(text: str) -> str:
    """The example's own opt-in block, switched on (its marked lines uncommented)."""
    for old, new in microcache_substitutions(CACHE_DIR).items():
        if old not in text:
            raise BenchError(f"nginx.conf.example: the micro-cache block ({old!r}) is missing")
        text = text.replace(old, new)
    return text


def render_variant(variant: Variant, template: str | None = None) -> str:
    """nginx.conf.example turned into the bench variant (addresses still the example's)."""
    text = _answer_from_nginx(template if template is not None else EXAMPLE_CONF.read_text())
    if variant is Variant.FLOOR_B:
        return _floor_b(text)
    if variant is Variant.MICROCACHE:
        return _microcache(text)
    return text


@contextmanager
def bench_nginx(workdir: Path, variant: Variant, auth_port: int) -> Iterator[NginxInstance]:
    """Run the variant with its gateway upstream on `auth_port` (the LLM upstream is never used)."""
    workdir.mkdir(parents=True, exist_ok=True)
    template = workdir / f"nginx-{variant.value}.conf.template"
    template.write_text(render_variant(variant))
    with running_nginx(workdir, auth_port, free_port(), template_path=template) as nginx:
        yield nginx
