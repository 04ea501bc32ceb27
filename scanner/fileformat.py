"""Read the YAML files people write for the scanner, with every problem located by line and field.

Consent records, waivers and recording manifests are written by hand and by other tools. A
mistake must be reported as `file:line: error [field]: message`, never as a traceback, and the
YAML is read with the safe loader only (no custom tags, no object construction).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)

DEFAULT_MAX_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Problem:
    """One problem in an input file, located precisely enough to fix it."""

    file: Path
    line: int | None
    field: str
    message: str
    is_error: bool = True

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        kind = "error" if self.is_error else "warning"
        field_part = f" [{self.field}]" if self.field else ""
        return f"{where}: {kind}{field_part}: {self.message}"


class FileFormatError(Exception):
    """An input file cannot be used; `problems` lists every error found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _SafeLoader(yaml.SafeLoader):
    """The safe YAML loader, with impossible dates reported at their line instead of crashing."""


def _construct_date(loader: yaml.SafeLoader, node: yaml.Node):
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"'{node.value}' is not a valid date ({exc})", node.start_mark
        ) from None


_SafeLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_date)


def read_text(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The file's UTF-8 text, or FileFormatError saying why it cannot be read."""
    try:
        if path.stat().st_size > max_bytes:
            raise FileFormatError([Problem(path, None, "", f"file is larger than {max_bytes // (1024 * 1024)} MB")])
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileFormatError([Problem(path, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FileFormatError([Problem(path, None, "", f"cannot read file: {exc}")]) from None


def load_yaml_model(path: Path, model: type[Model], max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[Model, Any]:
    """Parse `path` as YAML and validate it as `model`; return the model and the YAML node tree.

    The node tree lets callers locate further (semantic) problems with `line_of`.
    """
    path = Path(path)
    text = read_text(path, max_bytes)
    loader = _SafeLoader(text)
    root = None
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        if isinstance(exc, yaml.constructor.ConstructorError) and root is not None and mark is not None:
            raise FileFormatError([Problem(path, line, dotted(_path_to(root, mark.index)), reason)]) from None
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and context_mark.line + 1 != line:
            reason = f"{reason} ({context} started on line {context_mark.line + 1})"
        raise FileFormatError([Problem(path, line, "", f"not valid YAML: {reason}")]) from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FileFormatError([Problem(path, 1, "", "the top level must be a mapping of keys to values")])
    try:
        return model.model_validate(data), root
    except ValidationError as exc:
        problems = [
            Problem(path, line_of(root, err["loc"]), dotted(err["loc"]), _plain_message(err)) for err in exc.errors()
        ]
        raise FileFormatError(problems) from None


def line_of(node: Any, loc: tuple) -> int | None:
    """1-based line of the YAML node at `loc` (the deepest node that exists on the way)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(key, str):
            match = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def dotted(loc: tuple) -> str:
    return ".".join(str(part) for part in loc)


def _path_to(node: Any, index: int, loc: tuple = ()) -> tuple:
    """The key path of the YAML scalar that starts at character `index` (empty if not found)."""
    if node.start_mark.index == index and not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        return loc
    if isinstance(node, yaml.MappingNode):
        children = [(getattr(k, "value", "?"), v) for k, v in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = list(enumerate(node.value))
    else:
        return ()
    for key, child in children:
        found = _path_to(child, index, (*loc, key))
        if found:
            return found
    return ()


def _plain_message(err: dict) -> str:
    message = err.get("msg", "invalid value")
    if err.get("type") == "extra_forbidden":
        return "unknown field (check the spelling against the documented format)"
    if err.get("type") == "enum":
        return f"{message}; got {err.get('input')!r}"
    return message.removeprefix("Value error, ")
