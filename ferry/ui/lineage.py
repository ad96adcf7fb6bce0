"""A version's lineage as an inline SVG graph: where it came from, what was derived from it.

Columns, left to right: what the version was made from (its training data as `ferry.register`
recorded it, the members of a pipeline), its parent version (an optimized variant's original),
the version itself, and the versions derived from it (their `parent_version` is this one, e.g.
optimized variants). Every version is a link to its page. The graph is read from records the
registry already holds (`ModelVersion.lineage`, `parent_version`); nothing is loaded or run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from markupsafe import Markup, escape

from ferry.registry import ModelVersion
from ferry.uri import ModelURI

NODE_WIDTH = 200
NODE_HEIGHT = 46
COLUMN_GAP = 70
ROW_GAP = 14
MARGIN = 10
MAX_DERIVED = 8
"""Derived versions drawn; more are counted in one last node."""
MAX_CHARS = 28
"""Text longer than this is cut in a node (the page's tables have it whole)."""


@dataclass(frozen=True)
class Node:
    """One box of the graph: `kind` is data, member, parent, self, derived or more."""

    key: str
    kind: str
    label: str
    detail: str = ""
    href: str | None = None


@dataclass(frozen=True)
class Graph:
    columns: list[list[Node]]
    edges: list[tuple[str, str]]
    """(from key, to key): the first was used to make the second."""


def version_href(name: str, version: int) -> str:
    """The dashboard page of `name:version`."""
    return f"/ui/models/{quote(name, safe='')}/{version}"


def lineage_graph(version: ModelVersion, versions: Sequence[ModelVersion]) -> Graph:
    """The graph around `version`; `versions` are its model's versions (parent, derived)."""
    origins = _data_nodes(version) + _member_nodes(version)
    parent = _parent_node(version, versions)
    derived = _derived_nodes(version, versions)
    this = Node("self", "self", version.uri, f"{version.framework}, {version.runtime}")
    columns = [c for c in (origins, [parent] if parent else [], [this], derived) if c]
    edges = [(o.key, parent.key if parent else this.key) for o in origins]
    edges += [(parent.key, this.key)] if parent else []
    edges += [(this.key, d.key) for d in derived]
    return Graph(columns, edges)


def _data_nodes(version: ModelVersion) -> list[Node]:
    """The training data `ferry.register(lineage=...)` recorded, as one box."""
    lineage = version.lineage
    fingerprint = lineage.get("data_fingerprint")
    rows = lineage.get("data_rows")
    source = lineage.get("source") or lineage.get("run_id")
    if not (fingerprint or source):
        return []
    detail = ", ".join(x for x in (f"{rows} rows" if rows else "",
                                   str(fingerprint)[:12] if fingerprint else "") if x)
    return [Node("data", "data", f"data: {source}" if source else "training data", detail)]


def _member_nodes(version: ModelVersion) -> list[Node]:
    """A pipeline's member versions (`lineage["members"]`, URIs)."""
    nodes = []
    for index, uri in enumerate(version.lineage.get("members") or []):
        href = None
        try:
            parsed = ModelURI.parse(str(uri))
            if parsed.version is not None:
                href = version_href(parsed.name, parsed.version)
        except ValueError:
            pass
        nodes.append(Node(f"member-{index}", "member", str(uri), "pipeline member", href))
    return nodes


def _parent_node(version: ModelVersion, versions: Sequence[ModelVersion]) -> Node | None:
    if version.parent_version is None:
        return None
    parent = next((v for v in versions if v.version == version.parent_version), None)
    detail = "parent" if parent is None else f"parent: {parent.framework}, {parent.runtime}"
    return Node("parent", "parent", f"{version.name}:{version.parent_version}", detail,
                version_href(version.name, version.parent_version))


def _derived_nodes(version: ModelVersion, versions: Sequence[ModelVersion]) -> list[Node]:
    children = [v for v in versions if v.parent_version == version.version]
    nodes = [Node(f"derived-{v.version}", "derived", v.uri, _derived_detail(v),
                  version_href(v.name, v.version)) for v in children[:MAX_DERIVED]]
    if len(children) > MAX_DERIVED:
        nodes.append(Node("more", "more", f"{len(children) - MAX_DERIVED} more derived",
                          "listed in the versions table"))
    return nodes


def _derived_detail(version: ModelVersion) -> str:
    optimization = version.lineage.get("optimization")
    if isinstance(optimization, dict) and optimization.get("candidate"):
        return f"optimized: {optimization['candidate']}"
    return f"derived: {version.runtime}"


def describe(graph: Graph) -> str:
    """The graph in words (the SVG's description, for screen readers)."""
    labels = {node.key: node.label for column in graph.columns for node in column}
    if not graph.edges:
        return "no recorded origin and no derived version"
    return "; ".join(f"{labels[a]} made {labels[b]}" for a, b in graph.edges)


def lineage_svg(graph: Graph, title: str) -> Markup:
    """`graph` as an SVG image: boxes in columns, arrows from origin to result."""
    places = _places(graph)
    width = MARGIN * 2 + len(graph.columns) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP
    rows = max(len(column) for column in graph.columns)
    height = MARGIN * 2 + rows * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    arrows = "".join(_arrow(places[a], places[b]) for a, b in graph.edges)
    boxes = "".join(_box(node, places[node.key]) for column in graph.columns
                    for node in column)
    return Markup(
        f'<svg class="lineage" role="img" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title><desc>{escape(describe(graph))}</desc>{_MARKER}"
        f"{arrows}{boxes}</svg>")


_MARKER = ('<defs><marker id="lineage-arrow" viewBox="0 0 10 10" refX="10" refY="5"'
           ' markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
           '<path d="M 0 0 L 10 5 L 0 10 z" fill="#4a4a4a"></path></marker></defs>')


def _places(graph: Graph) -> dict[str, tuple[float, float]]:
    """Top-left corner of every node; each column centred vertically."""
    rows = max(len(column) for column in graph.columns)
    full = rows * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    places: dict[str, tuple[float, float]] = {}
    for index, column in enumerate(graph.columns):
        x = MARGIN + index * (NODE_WIDTH + COLUMN_GAP)
        top = MARGIN + (full - (len(column) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP)) / 2
        for row, node in enumerate(column):
            places[node.key] = (x, top + row * (NODE_HEIGHT + ROW_GAP))
    return places


def _arrow(start: tuple[float, float], end: tuple[float, float]) -> str:
    x1, y1 = start[0] + NODE_WIDTH, start[1] + NODE_HEIGHT / 2
    x2, y2 = end[0] - 2, end[1] + NODE_HEIGHT / 2
    bend = (x2 - x1) / 2
    return (f'<path d="M {x1:.1f} {y1:.1f} C {x1 + bend:.1f} {y1:.1f}, {x2 - bend:.1f}'
            f' {y2:.1f}, {x2:.1f} {y2:.1f}" fill="none" stroke="#4a4a4a"'
            ' stroke-width="1.5" marker-end="url(#lineage-arrow)"></path>')


_STYLES = {"self": ("#0b5cad", "#ffffff", "3"), "parent": ("#ffffff", "#1a1a1a", "1.5"),
           "derived": ("#ffffff", "#1a1a1a", "1.5"), "member": ("#ffffff", "#1a1a1a", "1.5"),
           "data": ("#f4f6f8", "#1a1a1a", "1"), "more": ("#f4f6f8", "#1a1a1a", "1")}
"""Fill, text colour and border width of each kind of node."""


def _box(node: Node, place: tuple[float, float]) -> str:
    fill, ink, border = _STYLES.get(node.kind, _STYLES["data"])
    x, y = place
    dash = ' stroke-dasharray="4 3"' if node.kind in ("data", "more") else ""
    body = (f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}"'
            f' rx="6" fill="{fill}" stroke="#1a1a1a" stroke-width="{border}"{dash}></rect>'
            f'<text x="{x + 10:.1f}" y="{y + 19:.1f}" style="fill:{ink};font-weight:600">'
            f"{escape(_cut(node.label))}</text>"
            f'<text x="{x + 10:.1f}" y="{y + 36:.1f}" style="fill:{ink}">'
            f"{escape(_cut(node.detail))}</text>")
    if node.href is None:
        return f"<g>{body}</g>"
    return f'<a href="{escape(node.href)}" aria-label="{escape(node.label)}">{body}</a>'


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS - 1] + "…"
