"""Reading the config file: bytes under a size cap, strict UTF-8, and YAML within limits.

A config file is small and written by people, so anything that is not is refused before it
costs time or memory, each time as one ``ConfigError`` (exit 2, one line):

- more than ``MAX_CONFIG_BYTES`` bytes, or bytes that are not UTF-8 (with the line);
- nesting deeper than ``MAX_DEPTH`` levels (20,000 nested ``[`` used to end in a traceback);
- more than ``MAX_ALIASES`` aliases (``*name``), or aliases that would expand the document by
  more than ``MAX_ALIAS_NODES`` nodes: anchors for a few shared blocks (``<<: *defaults``) are
  fine, a "billion laughs" (2.7 kB expanding to 10⁹ strings) is refused before it is built;
- an alias inside the node it refers to (a recursive structure);
- a key given twice in one mapping, at any depth, named by its path (``api.listen``): YAML
  loaders silently keep the last one. Keys merged in with ``<<`` may be overridden, as YAML says.

The checks run while the document is composed, in ``compose_document`` below: it builds the
node graph from the loader's event stream itself, without recursion, so they behave the same
(same messages) with PyYAML's pure-Python ``SafeLoader`` and libyaml's ``CSafeLoader`` — whose
own composer is recursive C that crashes the process on very deep input. Construction into
Python objects is left to the loader's ``SafeConstructor``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import yaml
from yaml.composer import ComposerError
from yaml.events import (
    AliasEvent,
    Event,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from core.errors import ConfigError

if TYPE_CHECKING:
    from yaml.cyaml import CSafeLoader

    LoaderClass: TypeAlias = type[yaml.SafeLoader] | type[CSafeLoader]

LoaderInstance: TypeAlias = Any
"""A ``SafeLoader`` or ``CSafeLoader``: the same interface, but their stubs differ (marks,
``resolve`` untyped), so the composer takes either as ``Any``."""

MAX_CONFIG_BYTES = 8 * 1024 * 1024
"""A config with 100,000 listed accounts is about 5 MB."""
MAX_DEPTH = 32
"""Nested collections; a valid config needs 6."""
MAX_ALIASES = 100
MAX_ALIAS_NODES = 10_000
"""Nodes that aliases may add to the document once expanded (each alias adds its target's)."""
FILE_KEY = "<file>"
MERGE_TAG = "tag:yaml.org,2002:merge"

LOADERS: tuple[LoaderClass, ...] = (yaml.SafeLoader,) + (
    (yaml.CSafeLoader,) if getattr(yaml, "__with_libyaml__", False) else ()
)
"""The loaders ``parse_yaml`` works with (libyaml's only where PyYAML was built with it)."""
DEFAULT_LOADER: LoaderClass = LOADERS[-1]
"""libyaml's ``CSafeLoader`` when PyYAML has it (its wheels do): 8–10× faster on a config
listing 100,000 accounts (``bench/config_yaml.py``); the pure-Python ``SafeLoader`` otherwise.
Both go through the same checks with the same messages (tests run every rule with each)."""


def dotted(loc: tuple[int | str, ...]) -> str:
    """A key path as the config errors show it: ``chains[0].rpc_urls[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "<root>"


def read_config_text(path: Path) -> str:
    """The file's text: at most ``MAX_CONFIG_BYTES`` bytes of UTF-8."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(FILE_KEY, f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(FILE_KEY, f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            FILE_KEY,
            f"not UTF-8: byte 0x{data[exc.start]:02x} at line {line}, column {column}",
        ) from None


def parse_yaml(text: str, loader: LoaderClass = DEFAULT_LOADER) -> Any:
    """One YAML document as Python data (``None`` when empty), within the module's limits."""
    instance: LoaderInstance = None
    try:
        instance = loader(text)  # the pure-Python reader already refuses characters here
        node = compose_document(instance)
        return None if node is None else instance.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(FILE_KEY, f"not valid YAML{_where(exc, text)}") from None
    finally:
        if instance is not None:
            instance.dispose()


def _where(exc: yaml.YAMLError, text: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        where = f" at line {mark.line + 1}, column {mark.column + 1}"
        # Only the composer's problems are ours (the same text with either loader).
        return f"{where}: {exc.problem}" if isinstance(exc, ComposerError) else where
    position = getattr(exc, "position", None)  # a ReaderError: a character YAML forbids
    if isinstance(position, int):
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return f": a character YAML does not allow at line {line}, column {column}"
    return ""


def _at(item: Node | Event) -> str:
    mark: Any = item.start_mark
    return f"at line {mark.line + 1}, column {mark.column + 1}"


@dataclass(slots=True)
class _Open:
    """A collection being composed: its node, path, and what its children add up to."""

    node: SequenceNode | MappingNode
    path: tuple[int | str, ...]
    size: int = 1
    height: int = 1
    key: Node | None = None
    keys: dict[object, Node] = field(default_factory=dict)


@dataclass(slots=True)
class _Composer:
    loader: LoaderInstance
    anchors: dict[str, Node] = field(default_factory=dict)
    sizes: dict[Node, tuple[int, int]] = field(default_factory=dict)
    """(expanded node count, nested collections) of every finished node."""
    stack: list[_Open] = field(default_factory=list)
    aliases: int = 0
    alias_nodes: int = 0
    root: Node | None = None

    def alias(self, event: Any) -> None:  # an AliasEvent (event marks: see LoaderInstance)
        node = self.anchors.get(event.anchor)
        if node is None:
            raise ComposerError(
                None, None, f"found undefined alias {event.anchor!r}", event.start_mark
            )
        if node not in self.sizes:
            raise ConfigError(FILE_KEY, f"alias *{event.anchor} inside its own anchor {_at(event)}")
        self.aliases += 1
        if self.aliases > MAX_ALIASES:
            raise ConfigError(FILE_KEY, f"more than {MAX_ALIASES} aliases {_at(event)}")
        size, height = self.sizes[node]
        self.alias_nodes += size
        if self.alias_nodes > MAX_ALIAS_NODES:
            raise ConfigError(
                FILE_KEY, f"aliases expand to more than {MAX_ALIAS_NODES} nodes {_at(event)}"
            )
        if len(self.stack) + height > MAX_DEPTH:
            raise ConfigError(FILE_KEY, f"nested deeper than {MAX_DEPTH} levels {_at(event)}")
        self.attach(node)

    def anchor(self, anchor: str | None, node: Node) -> None:
        if anchor is None:
            return
        if anchor in self.anchors:
            first: Any = self.anchors[anchor].start_mark
            raise ComposerError(
                None,
                None,
                f"anchor &{anchor} defined twice (first at line {first.line + 1})",
                node.start_mark,
            )
        self.anchors[anchor] = node

    def scalar(self, event: Any) -> None:  # a ScalarEvent
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(ScalarNode, event.value, event.implicit)
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
        self.anchor(event.anchor, node)
        self.sizes[node] = (1, 0)  # heights count collections only
        self.attach(node)

    def start(self, event: Any) -> None:  # a SequenceStartEvent or MappingStartEvent
        if len(self.stack) + 1 > MAX_DEPTH:
            raise ConfigError(FILE_KEY, f"nested deeper than {MAX_DEPTH} levels {_at(event)}")
        kind = SequenceNode if isinstance(event, SequenceStartEvent) else MappingNode
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(kind, None, event.implicit)
        node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
        self.anchor(event.anchor, node)
        parent = self.stack[-1] if self.stack else None
        self.stack.append(_Open(node, () if parent is None else self.child_path(parent)))

    def end(self, event: Any) -> None:  # a SequenceEndEvent or MappingEndEvent
        done = self.stack.pop()
        done.node.end_mark = event.end_mark
        self.sizes[done.node] = (done.size, done.height)
        self.attach(done.node)

    def child_path(self, parent: _Open) -> tuple[int | str, ...]:
        if isinstance(parent.node, SequenceNode):
            return (*parent.path, len(parent.node.value))
        key = parent.key
        label = key.value if isinstance(key, ScalarNode) else "?"
        return (*parent.path, str(label))

    def attach(self, node: Node) -> None:
        if not self.stack:
            self.root = node
            return
        parent = self.stack[-1]
        size, height = self.sizes[node]
        parent.size += size
        parent.height = max(parent.height, height + 1)
        if isinstance(parent.node, SequenceNode):
            parent.node.value.append(node)
        elif parent.key is None:
            self.check_duplicate(parent, node)
            parent.key = node
        else:
            parent.node.value.append((parent.key, node))
            parent.key = None

    def check_duplicate(self, parent: _Open, key: Node) -> None:
        if not isinstance(key, ScalarNode) or key.tag == MERGE_TAG:
            return  # a complex key is refused by the constructor; merged keys may be overridden
        value = self.loader.construct_object(key)
        first = parent.keys.setdefault(value, key)
        if first is not key:
            raise ConfigError(
                dotted((*parent.path, str(key.value))),
                f"key given twice (line {first.start_mark.line + 1} and "
                f"line {key.start_mark.line + 1}): remove one",
            )


def compose_document(loader: LoaderInstance) -> Node | None:
    """The single document of ``loader``'s stream as a node graph, checked against the limits.

    ``None`` for an empty stream; ``ComposerError`` for more than one document.
    """
    loader.get_event()  # StreamStart
    if loader.check_event(StreamEndEvent):
        loader.get_event()
        return None
    loader.get_event()  # DocumentStart: the parser guarantees the order
    composer = _Composer(loader)
    while composer.root is None:
        event = loader.get_event()
        if isinstance(event, AliasEvent):
            composer.alias(event)
        elif isinstance(event, ScalarEvent):
            composer.scalar(event)
        elif isinstance(event, (SequenceStartEvent, MappingStartEvent)):
            composer.start(event)
        else:  # SequenceEndEvent, MappingEndEvent
            composer.end(event)
    loader.get_event()  # DocumentEnd
    if not loader.check_event(StreamEndEvent):
        extra: Any = loader.get_event()
        raise ComposerError(None, None, "a second document: the config is one", extra.start_mark)
    loader.get_event()
    return composer.root
