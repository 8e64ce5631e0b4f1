"""YAML aliases that make a document infinite or huge once followed.

PyYAML's composer shares an anchored node wherever an alias names it, so a recursive anchor
(``&a [x, *a]``) makes a cycle and nested aliases (``&b [*a, *a, ...]``, a "billion laughs")
a graph whose walk is exponential: every reader that walks the constructed objects (the rules
loader, the configuration audit's checks) recursed forever or ran for hours with gigabytes.
:func:`alias_problem` finds either on the composed nodes, before anything is constructed,
visiting each distinct node once and without recursion.
"""

from __future__ import annotations

from yaml.nodes import MappingNode, Node, SequenceNode

# How many nodes more than the file has that aliases may add: a file without aliases never
# reaches it (each node is at least one character), a "billion laughs" does at once.
MAX_ALIAS_EXPANSION = 1_000_000

RECURSIVE = "a YAML alias inside this anchored node refers to the node itself (a recursive anchor)"
TOO_LARGE = ("YAML aliases make this node too large once expanded (over a million nodes more than the file holds: "
             "an alias bomb?); write its items out")


def alias_problem(document: Node, limit: int, sizes: dict[int, int] | None = None) -> tuple[str, Node] | None:
    """(what is wrong, the node at fault) when aliases make ``document`` cyclic or hold more
    than ``limit`` nodes once followed; else None. ``sizes`` (id(node) -> nodes it holds,
    aliases followed) may be shared between the documents of one stream."""
    sizes = {} if sizes is None else sizes
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(document, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            if total > limit:
                return TOO_LARGE, node
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            return RECURSIVE, node
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return None


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return node.value
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []
