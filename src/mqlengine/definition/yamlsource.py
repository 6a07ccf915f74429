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


# No definition nests anywhere near this deep; deeper (or an alias that contains itself)
# is refused with its place rather than exhausting the interpreter's stack.
MAX_DEPTH = 64


def _construct(node: yaml.Node, path: Path, source: SourceMap, within: tuple[int, ...] = ()) -> Any:
    source.positions[path] = _mark(node)
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        if id(node) in within:
            line, column = _mark(node)
            raise YamlProblem(source.filename, line, column, "an alias that contains itself")
        if len(within) >= MAX_DEPTH:
            line, column = _mark(node)
            raise YamlProblem(
                source.filename, line, column, f"nested more than {MAX_DEPTH} levels deep"
            )
        within = (*within, id(node))
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(_scalar(key_node))
            if key in result:
                line, column = _mark(key_node)
                raise YamlProblem(source.filename, line, column, f"duplicate key '{key}'")
            source.key_positions[(*path, key)] = _mark(key_node)
            result[key] = _construct(value_node, (*path, key), source, within)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), source, within) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):  # a mapping or list used as a key
        return yaml.serialize(node).strip()
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of a character index."""
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def load_yaml(text: str, filename: str) -> tuple[Any, SourceMap]:
    """Parse YAML text into plain Python values plus a :class:`SourceMap`."""
    source = SourceMap(filename)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return None, source
        return _construct(node, (), source), source
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = error.problem or str(error)
        raise YamlProblem(filename, line, column, f"YAML syntax error: {problem}") from error
    except yaml.reader.ReaderError as error:  # a character YAML does not allow
        line, column = _position(text, error.position)
        reason = f"character {error.character!r} is not allowed in YAML"
        if isinstance(error.character, int):
            reason = f"character U+{error.character:04X} is not allowed in YAML"
        raise YamlProblem(filename, line, column, reason) from error
