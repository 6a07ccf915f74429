"""YAML that remembers where each value came from, so errors can say ``file:line:col``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from mqlengine.errors import DefinitionError

Path = tuple[str | int, ...]


@dataclass
class SourceMap:
    """Maps a path of keys/indices to the (line, column) where that value starts (1-based)."""

    filename: str
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path) -> tuple[int, int]:
        """The position of the deepest part of ``path`` that exists in the file."""
        for end in range(len(path), -1, -1):
            prefix = tuple(path[:end])
            if prefix in self.key_positions and end == len(path):
                return self.key_positions[prefix]
            if prefix in self.positions:
                return self.positions[prefix]
        return (1, 1)

    def where(self, path: Path) -> str:
        line, column = self.locate(path)
        return f"{self.filename}:{line}:{column}"


class YamlProblem(DefinitionError):
    """One problem at a place in a definition file (``file:line:col: what``)."""

    def __init__(self, filename: str, line: int, column: int, message: str) -> None:
        self.diagnostic = f"{filename}:{line}:{column}: {message}"
        super().__init__(self.diagnostic, diagnostics=[self.diagnostic])


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _construct(node: yaml.Node, path: Path, source: SourceMap) -> Any:
    source.positions[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(_scalar(key_node))
            if key in result:
                line, column = _mark(key_node)
                raise YamlProblem(source.filename, line, column, f"duplicate key '{key}'")
            source.key_positions[(*path, key)] = _mark(key_node)
            result[key] = _construct(value_node, (*path, key), source)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), source) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def load_yaml(text: str, filename: str) -> tuple[Any, SourceMap]:
    """Parse YAML text into plain Python values plus a :class:`SourceMap`."""
    source = SourceMap(filename)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = error.problem or str(error)
        raise YamlProblem(filename, line, column, f"YAML syntax error: {problem}") from error
    if node is None:
        return None, source
    return _construct(node, (), source), source
