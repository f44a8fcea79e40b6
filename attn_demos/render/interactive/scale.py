"""One colour scale for every heatmap, overlay and token shading, and its legend as HTML.

A scale maps [vmin, vmax] onto a matplotlib colormap (optionally only the part of it between
`low` and `high`, e.g. a light part so dark text stays readable on shaded tokens). The browser
gets the same map as STOPS evenly spaced colours and interpolates linearly between them.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps

STOPS = 16  # colours sent to the browser per scale
TICKS = 5  # numbers written under a legend


@dataclass(frozen=True)
class ColourScale:
    """vmin..vmax on the colormap `cmap`, restricted to its [low, high] part."""

    vmin: float = 0.0
    vmax: float = 1.0
    cmap: str = "viridis"
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self):
        if self.cmap not in colormaps:
            raise ValueError(f"unknown colormap {self.cmap!r}")
        if not (np.isfinite(self.vmin) and np.isfinite(self.vmax)):
            raise ValueError(f"colour scale needs finite limits, got {self.vmin}..{self.vmax}")

    def stops(self) -> list[list[int]]:
        """STOPS colours [r, g, b] (0-255) from low to high along the colormap."""
        colours = colormaps[self.cmap](np.linspace(self.low, self.high, STOPS))  # (STOPS, 4)
        return np.round(colours[:, :3] * 255).astype(int).tolist()

    def fraction(self, values) -> np.ndarray:
        """(...) -> (...) position on the scale in [0, 1] (clipped; NaN -> 0)."""
        span = self.vmax - self.vmin if self.vmax > self.vmin else 1.0
        fractions = (np.asarray(values, dtype=np.float64) - self.vmin) / span
        return np.clip(np.nan_to_num(fractions, nan=0.0), 0.0, 1.0)

    def css_colours(self, values) -> list[str]:
        """(N,) values -> N CSS colours, interpolated between the stops exactly as the browser does."""
        stops = np.asarray(self.stops(), dtype=np.float64)  # (STOPS, 3)
        position = self.fraction(values).reshape(-1) * (STOPS - 1)  # (N,)
        below = np.minimum(np.floor(position).astype(int), STOPS - 2)  # (N,)
        weight = (position - below)[:, None]  # (N, 1)
        rgb = np.round(stops[below] * (1 - weight) + stops[below + 1] * weight).astype(int)  # (N, 3)
        return [f"rgb({r}, {g}, {b})" for r, g, b in rgb]

    def payload(self) -> dict:
        """What a view's script needs: limits and stops."""
        return {"vmin": float(self.vmin), "vmax": float(self.vmax), "stops": self.stops()}


def _gradient(scale: ColourScale) -> str:
    stops = scale.stops()
    parts = [f"rgb({r}, {g}, {b}) {100 * i / (len(stops) - 1):.1f}%" for i, (r, g, b) in enumerate(stops)]
    return "linear-gradient(to right, " + ", ".join(parts) + ")"


def legend_html(scale: ColourScale, label: str = "attention weight", decimals: int = 3) -> str:
    """A horizontal colour bar with TICKS numbers from vmin to vmax and a label (escaped).

    Each tick is <span class="attn-tick" data-frac="f">: a view that rescales (hiding special
    tokens) rewrites the numbers from data-frac."""
    ticks = []
    for i in range(TICKS):
        frac = i / (TICKS - 1)
        value = scale.vmin + frac * (scale.vmax - scale.vmin)
        place = f"position: absolute; left: {100 * frac:g}%; transform: translateX(-{100 * frac:g}%);"
        ticks.append(f'<span class="attn-tick" data-frac="{frac:g}" style="{place}">{value:.{decimals}f}</span>')
    # inline styles: the legend reads right even where the shared CSS is not loaded
    return (
        f'<div class="attn-legend" data-decimals="{decimals}" style="display: inline-block; width: 260px;'
        f' max-width: 100%; font-size: 12px; margin: 4px 16px 4px 0; vertical-align: top;">'
        f'<div class="attn-legend-label">{html.escape(label)}</div>'
        f'<div class="attn-legend-bar" style="height: 12px; border-radius: 2px; background: {_gradient(scale)}"></div>'
        f'<div class="attn-legend-ticks" style="position: relative; height: 1.4em;">{"".join(ticks)}</div></div>'
    )


def image_legend_html(cmap: str, vmin: float, vmax: float, label: str = "attention") -> str:
    """The colour scale of an image overlay (e.g. patch_overlay's cmap and its value range)."""
    return legend_html(ColourScale(float(vmin), float(vmax), cmap), label)
