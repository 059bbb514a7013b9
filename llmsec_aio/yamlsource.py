"""Read a YAML file into plain data plus the line of every dotted key, for precise error messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, Problem


@dataclass
class YamlSource:
    """Parsed YAML with `lines["a.b"]` giving the 1-based line where key `a.b` was written."""

    file: str
    data: Any
    lines: dict[str, int] = field(default_factory=dict)
    duplicates: list[Problem] = field(default_factory=list)

    def line(self, key: str) -> int | None:
        # A missing key is reported at its nearest written parent.
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key.rpartition(".")[0]
        return None

    def problem(self, key: str, expected: str, found: str) -> Problem:
        return Problem(self.file, self.line(key), key, expected, found)


def describe(value: Any) -> str:
    """A short, secret-free description of a found value for error messages."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {shown!r}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def load_yaml(path: Path) -> YamlSource:
    """Parse `path`; syntax errors and unreadable files raise ConfigError. Keys written twice are
    listed in `duplicates`, for the caller to report with the rest of its problems."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(name, None, "(file)", "a readable file", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        found = type(exc).__name__
        raise ConfigError([Problem(name, None, "(file)", "a readable UTF-8 file", found)]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([Problem(name, line, "(syntax)", "valid YAML", str(reason))]) from None
    source = YamlSource(name, data)
    if node is not None:
        _index(node, "", source, source.duplicates)
    return source


def _index(node: yaml.Node, prefix: str, source: YamlSource, duplicates: list[Problem]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            if key in seen:
                line = key_node.start_mark.line + 1
                duplicates.append(Problem(source.file, line, key, "a key written once", "a duplicate"))
            seen.add(key)
            source.lines[key] = key_node.start_mark.line + 1
            _index(value_node, key, source, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            key = f"{prefix}[{i}]"
            source.lines[key] = item.start_mark.line + 1
            _index(item, key, source, duplicates)
