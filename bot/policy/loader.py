"""Reading a policy file: YAML with line marks, validated, errors naming the line.

The YAML is parsed into PyYAML's node graph first, because nodes keep their position in
the file: a pydantic error's location (`channels` → `slack:C1` → `temperature`) is walked
down that graph to the node it names, and its line goes into the message.

The file is untrusted input in the sense that a typo must never crash or hang the bot:
its size is capped, the data it expands to through anchors and aliases is capped (a
"billion laughs" file is an error, not a hang), nesting too deep is an error, and a key
written twice in one mapping is an error instead of the last one silently winning.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.errors import PolicyFileError
from bot.policy.model import PolicyFile

MAX_FILE_BYTES = 1024 * 1024
# Nodes visited with every alias expanded: a generous bound for a hand-written file that
# still stops an exponential alias chain long before it costs real time or memory.
MAX_EXPANDED_NODES = 200_000
MAX_REPORTED_ERRORS = 5
MERGE_KEY = "<<"


def read_policy_file(path: Path) -> PolicyFile:
    """Read and check the policy file at `path` (blocking: call it from a worker thread)."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise PolicyFileError(str(path), None, f"can't be read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise PolicyFileError(str(path), None, f"is larger than {MAX_FILE_BYTES // 1024} KB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PolicyFileError(str(path), line, "is not UTF-8 text") from exc
    return parse_policy(text, str(path))


def parse_policy(text: str, source: str = "<policy>") -> PolicyFile:
    """The policy in YAML `text`, or `PolicyFileError` naming the line and the problem."""
    root, data = _load_yaml(text, source)
    if data is None:
        return PolicyFile()
    if not isinstance(data, dict):
        raise PolicyFileError(source, _line(root), "the top level must be a mapping of layers")
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as exc:
        problems = [
            (_line(_node_at(root, err["loc"])), _describe(err["loc"], err["msg"]))
            for err in exc.errors(include_url=False)[:MAX_REPORTED_ERRORS]
        ]
        raise PolicyFileError.many(source, problems) from None


def _load_yaml(text: str, source: str) -> tuple[Node | None, object]:
    try:
        loader = yaml.SafeLoader(text)  # checks the characters first
    except yaml.reader.ReaderError as exc:
        raise _reader_error(text, source, exc) from None
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_graph(root, source)
        return root, loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise PolicyFileError(source, line, exc.problem or exc.context or "invalid YAML") from None
    except yaml.reader.ReaderError as exc:
        raise _reader_error(text, source, exc) from None
    except yaml.YAMLError as exc:
        raise PolicyFileError(source, loader.get_mark().line + 1, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise PolicyFileError(source, loader.get_mark().line + 1, "is nested too deeply") from None
    finally:
        loader.dispose()


def _reader_error(text: str, source: str, exc: yaml.reader.ReaderError) -> PolicyFileError:
    line = text[: exc.position].count("\n") + 1
    return PolicyFileError(source, line, f"invalid character: {exc.reason}")


def _check_graph(root: Node, source: str) -> None:
    """Bound the expanded size (aliases count every time) and refuse duplicate keys."""
    stack: list[Node] = [root]
    visited = 0
    while stack:
        node = stack.pop()
        visited += 1
        if visited > MAX_EXPANDED_NODES:
            raise PolicyFileError(
                source, _line(node), "expands to too much data (anchors and aliases)"
            )
        if isinstance(node, MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.value != MERGE_KEY:
                    if key.value in seen:
                        raise PolicyFileError(source, _line(key), f"“{key.value}” appears twice")
                    seen.add(key.value)
                stack.append(key)
                stack.append(value)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def _node_at(root: Node | None, loc: Sequence[int | str]) -> Node | None:
    """The deepest node of the graph that `loc` (a pydantic error location) leads to."""
    node = root
    for part in loc:
        child = _child(node, part) if node is not None else None
        if child is None:
            break
        node = child
    return node


def _child(node: Node, part: int | str) -> Node | None:
    if isinstance(node, MappingNode):
        for key, value in _pairs(node):
            if isinstance(key, ScalarNode) and key.value == str(part):
                return value
        if part == "[key]":
            return node
    elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
        child: Node = node.value[part]
        return child
    return None


def _pairs(node: MappingNode) -> Iterator[tuple[Node, Node]]:
    # Later pairs win in YAML, so search from the end.
    return reversed(node.value)


def _line(node: Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def _describe(loc: Sequence[int | str], message: str) -> str:
    where = ".".join(str(part) for part in loc if part != "[key]")
    return f"{where}: {message}" if where else message
