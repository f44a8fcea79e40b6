"""Views that follow one Layer/Head choice without a server (a notebook's output, a saved page): the
maps of every embedded (layer, head) travel in the page, and the panel's script (panel.js) swaps
them into its heatmap, moves the grid's outline and the head view's layer when a select changes or
a grid cell is clicked.

    panel_html(maps, layer_names, heads, shown, parts, note="", title="")

maps: {(layer, head): (heatmap fragment, badge text, {view kind: payload changes})} (head an int
or "mean"); shown: the (layer, head) drawn first; parts: other views' fragments (head_grid_html,
head_view_html, overlay_html) shown under the heatmap. The payload changes are given to the
panel's view of that kind when the map is chosen (e.g. an overlay's values). Only the maps given
can be chosen; the note says which are embedded.
"""

from __future__ import annotations

import html

from attn_demos.render.interactive.embed import read_payload, view_html

SHARED = ("q", "k", "qs", "ks")  # the heatmap payload's labels: the same for every map, sent once


def map_key(layer: int, head: int | str) -> str:
    """The key of one map in the panel's payload: "3:5", "0:mean"."""
    return f"{int(layer)}:{head}"


def panel_html(
    maps: dict[tuple[int, int | str], tuple[str, str, dict]],
    layer_names: list[str],
    heads: int,
    shown: tuple[int, int | str],
    parts: list[str] = (),
    note: str = "",
    title: str = "",
) -> str:
    """maps -> one panel (HTML fragment).

    The heatmap of `shown` is drawn first; choosing another (layer, head) in the panel's selects
    or in a grid among `parts` swaps in that map's payload, title, badge and changes of the other
    views (a heatmap's labels travel once: every map has those of the shown one)."""
    if shown not in maps:
        raise ValueError(f"the map shown first {shown} is not among the maps given")
    first, badge, _ = maps[shown]
    entries = {}
    for (layer, head), (fragment, text, children) in maps.items():
        payload = read_payload(fragment)
        entries[map_key(layer, head)] = {
            "payload": {key: value for key, value in payload.items() if key not in SHARED},
            "title": _title_of(fragment),
            "badge": text,
            "children": children,
        }
    payload = {
        "layers": [str(name) for name in layer_names],
        "heads": int(heads),
        "shown": [int(shown[0]), shown[1]],
        "maps": entries,
    }
    static = (
        (f'<div class="attn-note attn-panel-note">{html.escape(note)}</div>' if note else "")
        + f'<div class="attn-panel-badge">{html.escape(badge)}</div>'
        + first
        + "".join(parts)
    )
    return view_html("panel", payload, title, static)


def _title_of(fragment: str) -> str:
    """The title text of a view fragment built by view_html ("" when it has none)."""
    marker = '<div class="attn-title">'
    if marker not in fragment:
        return ""
    start = fragment.index(marker) + len(marker)
    return html.unescape(fragment[start : fragment.index("</div>", start)])
