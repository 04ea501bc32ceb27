"""Read the YAML files people write for the scanner, with every problem located by line and field.

Consent records, waivers and recording manifests are written by hand and by other tools. A
mistake must be reported as `file:line: error [field]: message`, never as a traceback, and the
YAML is read with the safe loader only (no custom tags, no object construction).

Hostile YAML is refused as a located Problem before anything is built from it:

- files larger than `max_bytes` (20 MB) are not read;
- custom tags (`!!python/object/apply:os.system`, `!include`, ...) are rejected by name;
- alias bombs ("billion laughs": a few lines of anchors and aliases that expand to billions of
  nodes) are measured on the node graph without expanding it: more than `MAX_ALIASES` aliases,
  more than `MAX_NODES` nodes once aliases are expanded, or an anchor that contains itself is an
  error at the line where the expansion blows up;
- nesting deeper than `MAX_DEPTH` levels is an error (the YAML parser is recursive).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)

DEFAULT_MAX_BYTES = 20 * 1024 * 1024

#: Aliases (`*name`) allowed in one document; real files share a grant or two, not thousands.
MAX_ALIASES = 1_000
#: Nodes allowed once every alias is expanded (what the validation and the scan would walk).
MAX_NODES = 1_000_000
#: Nesting depth allowed (a consent file needs about 6 levels).
MAX_DEPTH = 64


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


def _construct_unknown_tag(loader: yaml.SafeLoader, node: yaml.Node):
    raise yaml.constructor.ConstructorError(
        None, None,
        f"custom YAML tag '{node.tag.replace('tag:yaml.org,2002:', '!!')}' is not allowed "
        "(only plain values: mappings, lists, text, numbers, dates)",
        node.start_mark,
    )


_SafeLoader.add_constructor(None, _construct_unknown_tag)


def _compose_node(self, parent, index):
    self._likeness_depth = getattr(self, "_likeness_depth", 0) + 1
    try:
        if self._likeness_depth > MAX_DEPTH:
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark
            )
        return yaml.composer.Composer.compose_node(self, parent, index)
    finally:
        self._likeness_depth -= 1


_SafeLoader.compose_node = _compose_node


def check_node_graph(
    path: Path, root: Any, max_aliases: int = MAX_ALIASES, max_nodes: int = MAX_NODES
) -> None:
    """Raise FileFormatError when the composed YAML is an alias bomb or refers to itself.

    PyYAML represents an alias as a second reference to the anchored node, so the document is a
    graph. It is walked once per distinct node (never expanded): the number of aliases is the
    number of references to nodes already seen, and the expanded size of each node is computed
    from its children's. The problem is reported at the first node whose expansion passes the
    limit, which is where the bomb is built.
    """
    if root is None:
        return
    size: dict[int, int] = {}
    aliases = 0
    seen: set[int] = set()
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            on_path.discard(key)
            total = 1 + sum(size[id(c)] for c in children)
            size[key] = total
            if total > max_nodes:
                raise FileFormatError([Problem(
                    path, node.start_mark.line + 1, "",
                    f"aliases expand to more than {max_nodes:,} values (an alias bomb); write the values out instead",
                )])
            continue
        if key in on_path:
            raise FileFormatError([Problem(
                path, node.start_mark.line + 1, "", "an anchor refers to itself (recursive alias)"
            )])
        if key in seen:  # a second reference to an anchored node: an alias
            aliases += 1
            if aliases > max_aliases:
                raise FileFormatError([Problem(
                    path, node.start_mark.line + 1, "",
                    f"more than {max_aliases:,} aliases (*name) in one file; write the values out instead",
                )])
            continue
        seen.add(key)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(children))


def _children(node: Any) -> list:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


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
    loader = None
    root = None
    try:
        loader = _SafeLoader(text)  # rejects control characters on construction
        root = loader.get_single_node()
        check_node_graph(path, root)
        data = loader.construct_document(root) if root is not None else None
    except RecursionError:
        raise FileFormatError([Problem(path, None, "", "not valid YAML: nested too deeply")]) from None
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
        if loader is not None:
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
    """A pydantic error location as a field path for messages: ("subjects", 0, "id") -> "subjects.0.id"."""
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
    return loc if loc and node.start_mark.index == index else ()


def _plain_message(err: dict) -> str:
    message = err.get("msg", "invalid value")
    if err.get("type") == "extra_forbidden":
        return "unknown field (check the spelling against the documented format)"
    if err.get("type") == "enum":
        return f"{message}; got {err.get('input')!r}"
    return message.removeprefix("Value error, ")
