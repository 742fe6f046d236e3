"""Loading ``policies/*.yaml`` with errors that name the file, the line and the key.

Policies are the contract between cdp and its compliance officers, so a typo
must not be silently ignored: unknown keys, unknown actions, unknown classes
and purposes all fail at load, pointing at the exact line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cdp._exceptions import ConfigurationError


@dataclass
class LocatedDocument:
    """A YAML document as plain Python, with the line of every key path."""

    file: Path
    data: Any
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)

    def line(self, *path: str) -> int:
        for cut in range(len(path), 0, -1):
            if path[:cut] in self.lines:
                return self.lines[path[:cut]]
        return 1

    def error(self, path: tuple[str, ...], reason: str) -> ConfigurationError:
        dotted = ".".join(path) or "(document)"
        return ConfigurationError(f"{self.file}:{self.line(*path)}: {dotted}: {reason}")


def _convert(node: yaml.Node, path: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, str(i)), lines) for i, item in enumerate(node.value)]
    constructor = yaml.SafeLoader("")
    return constructor.construct_object(node, deep=True)


def load_yaml(file: Path) -> LocatedDocument:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"{file}: cannot read policy file: {exc.strerror}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise ConfigurationError(f"{file}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    lines: dict[tuple[str, ...], int] = {}
    data = {} if node is None else _convert(node, (), lines)
    return LocatedDocument(file=file, data=data, lines=lines)


def require_mapping(doc: LocatedDocument, value: Any, path: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise doc.error(path, f"expected a mapping, got {type(value).__name__}")
    return value


def require_list(doc: LocatedDocument, value: Any, path: tuple[str, ...]) -> list[Any]:
    if not isinstance(value, list):
        raise doc.error(path, f"expected a list, got {type(value).__name__}")
    return value


def check_keys(doc: LocatedDocument, mapping: dict[str, Any], path: tuple[str, ...], allowed: set[str]) -> None:
    for key in mapping:
        if key not in allowed:
            raise doc.error((*path, key), f"unknown key {key!r} (expected one of {', '.join(sorted(allowed))})")
