"""One selection that several views follow: the Layer and Head a tab shows and the query row a
person clicked. A tab sends it (a few bytes) with every redraw; views of the same group (the head
view) follow it in the browser, so a Layer change never sends their weights again.

    selection_html("explore", layer=4, head=5, query=None)
    head_view_html(..., group="explore")        # opens on, and then follows, layer 4, head 5

layer: an index or "mean" (the mean over layers: the head view keeps the layer it shows); head:
an index, or a fusion / "rollout" (the head view then shows the TOP_HEADS heads of its layer with
the most weight between non-special tokens); query: the selected row, or None when nobody
selected one.
"""

from __future__ import annotations

from attn_demos.render.interactive.embed import view_html


def selection_html(group: str, layer: int | str, head: int | str, query: int | None = None) -> str:
    """The selection of `group` as a hidden element (for a gr.HTML with visible="hidden")."""
    if not group:
        raise ValueError("a selection needs the group of views that follow it")
    payload = {
        "group": group,
        "layer": layer if isinstance(layer, str) else int(layer),
        "head": head if isinstance(head, str) else int(head),
        "query": None if query is None else int(query),
    }
    return view_html("selection", payload, group=group)
