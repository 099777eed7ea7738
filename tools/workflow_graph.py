"""A small builder for ComfyUI UI-format workflows (the JSON users drag in), from node definitions as
GET /object_info reports them. Used by tools/make_workflows.py; not part of the published pack."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from workflow_api import CANVAS_ONLY, widget_inputs  # noqa: E402

COLUMN_X = 380  # horizontal distance between columns
TOP = 40
GAP = 30


class Output:
    """One output slot of a node: what an input links to."""

    def __init__(self, node: "Node", slot: int, kind: str):
        self.node, self.slot, self.kind = node, slot, kind


class Node:
    def __init__(self, graph: "Graph", node_id: int, kind: str, info: dict | None, title: str | None):
        self.graph, self.id, self.type, self.info, self.title = graph, node_id, kind, info, title
        self.links_in: dict[str, tuple[Output, bool]] = {}  # input name -> (source, is it a widget)
        self.values: list = []
        self.links_out: dict[int, list[int]] = {}
        self.pos, self.size = [0, 0], [320, 100]
        self.extra: dict = {}

    def __getitem__(self, slot: int | str) -> Output:
        names = self.info.get("output_name") or self.info["output"]
        index = names.index(slot) if isinstance(slot, str) else slot
        return Output(self, index, self.info["output"][index])


class Graph:
    def __init__(self, object_info: dict[str, dict]):
        self.object_info = object_info
        self.nodes: list[Node] = []
        self.links: list[list] = []
        self.column_y: dict[int, float] = {}

    def add(self, kind: str, column: int, title: str | None = None, box_width: int = 320, /, **inputs) -> Node:
        """A node in a column (stacked top to bottom); inputs are Outputs (links) or widget values by name;
        widgets not given take the node's defaults; seed controls are 'fixed' so runs repeat."""
        info = self.object_info[kind]
        node = Node(self, len(self.nodes) + 1, kind, info, title)
        unknown = set(inputs) - set(_declared(info))
        if unknown:
            raise KeyError(f"{kind}: no inputs named {sorted(unknown)} (has {_declared(info)})")
        widgets = dict(widget_inputs(info))
        for name, value in inputs.items():
            if isinstance(value, Output):
                node.links_in[name] = (value, name in widgets)
        for name, control in widget_inputs(info):
            value = inputs.get(name)
            node.values.append(_default(info, name) if value is None or isinstance(value, Output) else value)
            if control:
                node.values.append("fixed")
        if kind == "LoadImage":
            node.values.append("image")  # the upload button's value
        node.size = [box_width, _height(info, node)]
        self._place(node, column)
        self.nodes.append(node)
        return node

    def note(self, text: str, column: int, width: int = 320, height: int | None = None, title: str = "Note") -> Node:
        """A Note on the canvas (not executed)."""
        node = Node(self, len(self.nodes) + 1, "Note", None, title)
        node.values = [text]
        lines = sum(1 + len(line) // 44 for line in text.splitlines())
        node.size = [width, height or 40 + 17 * lines]
        node.extra = {"color": "#432", "bgcolor": "#653"}
        self._place(node, column)
        self.nodes.append(node)
        return node

    def _place(self, node: Node, column: int):
        y = self.column_y.get(column, TOP)
        node.pos = [40 + column * COLUMN_X, y]
        self.column_y[column] = y + node.size[1] + GAP + 30  # + title bar

    def to_ui(self) -> dict:
        """The workflow JSON as the frontend saves it (format version 0.4)."""
        links, ui_nodes = [], []
        for node in self.nodes:
            for name, (source, _) in node.links_in.items():
                link_id = len(links) + 1
                links.append([link_id, source.node.id, source.slot, node.id, _input_index(node, name), source.kind])
                source.node.links_out.setdefault(source.slot, []).append(link_id)
        order = _topological_order(self.nodes)
        for node in self.nodes:
            ui_nodes.append(_ui_node(node, order[node.id], links))
        return {"last_node_id": len(self.nodes), "last_link_id": len(links), "nodes": ui_nodes, "links": links,
                "groups": [], "config": {}, "extra": {"ds": {"scale": 0.75, "offset": [20, 20]}}, "version": 0.4}


def _declared(info: dict) -> list[str]:
    return [n for section in ("required", "optional") for n in info["input"].get(section, {})]


def _decl(info: dict, name: str):
    for section in ("required", "optional"):
        if name in info["input"].get(section, {}):
            return info["input"][section][name]
    raise KeyError(name)


def _default(info: dict, name: str):
    decl = _decl(info, name)
    opts = decl[1] if len(decl) > 1 and isinstance(decl[1], dict) else {}
    if "default" in opts:
        return opts["default"]
    options = decl[0] if isinstance(decl[0], list) else opts.get("options", [])
    if options:
        return options[0]
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(decl[0])


def _socket_inputs(node: Node) -> list[str]:
    """Inputs drawn as sockets: non-widget inputs in declaration order, then widgets fed by a link."""
    widgets = {n for n, _ in widget_inputs(node.info)}
    sockets = [n for n in _declared(node.info) if n not in widgets]
    return sockets + [n for n in _declared(node.info) if n in widgets and n in node.links_in]


def _input_index(node: Node, name: str) -> int:
    return _socket_inputs(node).index(name)


def _height(info: dict, node: Node) -> int:
    rows = max(len(_socket_inputs(node)), len(info["output"]))
    multiline = sum(1 for n, _ in widget_inputs(info) if (_decl(info, n)[1] if len(_decl(info, n)) > 1 else {})
                    .get("multiline"))
    # room for what the frontend adds: PreviewAny's text box, the image an image node shows after a run
    display = {"PreviewAny": 90, "SaveImage": 200, "PreviewImage": 200}.get(node.type, 0)
    return 30 + 22 * rows + 26 * len(node.values) + 70 * multiline + display


def _topological_order(nodes: list[Node]) -> dict[int, int]:
    order, done = {}, set()
    while len(done) < len(nodes):
        for node in nodes:
            if node.id not in done and all(src.node.id in done for src, _ in node.links_in.values()):
                order[node.id] = len(order)
                done.add(node.id)
    return order


def _ui_node(node: Node, order: int, links: list[list]) -> dict:
    ui = {"id": node.id, "type": node.type, "pos": node.pos, "size": node.size, "flags": {}, "order": order,
          "mode": 0}
    if node.type in CANVAS_ONLY:
        ui.update({"properties": {}, "widgets_values": node.values, "title": node.title, **node.extra})
        return ui
    inputs = []
    for name in _socket_inputs(node):
        decl = _decl(node.info, name)
        slot = {"name": name, "type": "COMBO" if isinstance(decl[0], list) else decl[0],
                "link": next((l[0] for l in links if l[3] == node.id and l[4] == _input_index(node, name)), None)}
        if node.links_in.get(name, (None, False))[1]:
            slot["widget"] = {"name": name}
        inputs.append(slot)
    names = node.info.get("output_name") or node.info["output"]
    outputs = [{"name": names[i], "type": kind, "links": node.links_out.get(i, []), "slot_index": i}
               for i, kind in enumerate(node.info["output"])]
    if inputs:
        ui["inputs"] = inputs
    ui["outputs"] = outputs
    ui["properties"] = {"Node name for S&R": node.type}
    ui["widgets_values"] = node.values
    if node.title:
        ui["title"] = node.title
    return ui
