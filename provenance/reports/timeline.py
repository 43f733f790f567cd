"""The timeline plot: similarity per segment across the clip, with the tampered ranges shaded.

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no global state), because
reports are rendered on the verifier's worker threads. The geometry of the plot is returned with
the PNG so that a test, or anything else, can map seconds to pixels and check what was drawn.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

# The shading of tampered ranges, and the bars: colours that stay apart for colour-blind readers
# (blue against red), with a hatch on the tampered bars so print in grey still tells them apart.
SHADE_RGB = (246, 200, 200)
OK_COLOUR = "#2b6cb0"
TAMPERED_COLOUR = "#b2182b"
THRESHOLD = 0.5  # similarity below which a segment is tampered (distance above 0.5)
WIDTH_IN, HEIGHT_IN, DPI = 8.0, 2.8, 100
# The phone layout's plot: drawn 360 px wide, shown at about its own size on a 390 px screen, so its
# text stays at least 12 px (10 pt at 100 dpi is 13.9 px); the desktop plot shrunk there would be ~5 px.
PHONE_WIDTH_IN, PHONE_HEIGHT_IN, PHONE_FONT_PT = 3.6, 3.4, 10.0
DESKTOP_FONT_PT = 10.0
Y_TOP = 1.08


@dataclass(frozen=True)
class TimelineGeometry:
    """Where the axes sit in the PNG (pixels, origin top-left) and what they span."""

    width: int
    height: int
    axes_px: tuple[float, float, float, float]  # left, top, right, bottom
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    shade_rgb: tuple[int, int, int]
    tampered_ranges: list[tuple[float, float]]

    def x_px(self, t: float) -> float:
        left, _, right, _ = self.axes_px
        return left + (t - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * (right - left)

    def y_px(self, value: float) -> float:
        _, top, _, bottom = self.axes_px
        return bottom - (value - self.ylim[0]) / (self.ylim[1] - self.ylim[0]) * (bottom - top)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def timeline_png(
    segments: Sequence[dict[str, Any]],
    tampered_ranges: Sequence[Sequence[float]],
    duration: float,
    *,
    phone: bool = False,
) -> tuple[bytes, TimelineGeometry]:
    """Bars of similarity (1 - distance) per segment over clip time; tampered ranges shaded.

    `phone`: the narrow version for small screens, legend stacked above the plot, text >= 12 px."""
    end = max([duration, *(float(s["query_end"]) for s in segments)], default=1.0)
    end = end if end > 0 else 1.0
    font = PHONE_FONT_PT if phone else DESKTOP_FONT_PT
    size = (PHONE_WIDTH_IN, PHONE_HEIGHT_IN) if phone else (WIDTH_IN, HEIGHT_IN)
    fig = Figure(figsize=size, dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.17, 0.17, 0.79, 0.5) if phone else (0.08, 0.2, 0.9, 0.66))
    ranges = [(float(a), float(b)) for a, b in tampered_ranges]
    for start, stop in ranges:
        ax.axvspan(start, stop, color=_hex(SHADE_RGB), zorder=0, linewidth=0)
    for segment in segments:
        start, stop = float(segment["query_start"]), float(segment["query_end"])
        similarity = max(0.0, 1.0 - float(segment["distance"]))
        tampered = bool(segment["tampered"])
        ax.bar(
            start,
            max(similarity, 0.03),  # a sliver stays visible where nothing matched
            width=max(stop - start, end / 400),
            align="edge",
            color=TAMPERED_COLOUR if tampered else OK_COLOUR,
            hatch="///" if tampered else None,
            edgecolor="white",
            linewidth=0.6,
            zorder=2,
        )
    ax.axhline(THRESHOLD, color="#333333", linestyle="--", linewidth=1, zorder=3)
    ax.set_xlim(0.0, end)
    ax.set_ylim(0.0, Y_TOP)
    ax.set_yticks([0.0, 0.5, 1.0])
    ax.tick_params(labelsize=font)
    ax.set_xlabel("time in the clip (seconds)", fontsize=font)
    ax.set_ylabel("similarity", fontsize=font)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles = [
        Patch(facecolor=OK_COLOUR, label="matches the original"),
        Patch(facecolor=TAMPERED_COLOUR, hatch="///", edgecolor="white", label="differs"),
        Patch(facecolor=_hex(SHADE_RGB), label="tampered range"),
    ]
    fig.legend(handles=handles, loc="upper center", ncols=1 if phone else 3, frameon=False, fontsize=font)
    canvas.draw()
    width, height = (int(v) for v in canvas.get_width_height())
    box = ax.get_window_extent()
    geometry = TimelineGeometry(
        width=width,
        height=height,
        axes_px=(float(box.x0), float(height - box.y1), float(box.x1), float(height - box.y0)),
        xlim=(0.0, end),
        ylim=(0.0, Y_TOP),
        shade_rgb=SHADE_RGB,
        tampered_ranges=ranges,
    )
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return buffer.getvalue(), geometry


def timeline_alt(
    segments: Sequence[dict[str, Any]], tampered_ranges: Sequence[Sequence[float]], duration: float
) -> str:
    """The plot in words: the span, the shaded ranges and how similar the rest is."""
    words = [f"Timeline of similarity to the original, segment by segment, over {seconds(duration)} of clip."]
    if tampered_ranges:
        words.append("Tampered ranges, shaded: " + ", ".join(span(a, b) for a, b in tampered_ranges) + ".")
    else:
        words.append("No range is tampered.")
    clean = [1 - float(s["distance"]) for s in segments if not s["tampered"]]
    if clean:
        words.append(f"Elsewhere the similarity stays at or above {min(clean):.2f} (threshold {THRESHOLD}).")
    return " ".join(words)


def seconds(t: float) -> str:
    """Seconds as a reader wants them: one decimal unless the value needs two."""
    tenths = t * 10
    return f"{t:.1f} s" if abs(tenths - round(tenths)) < 1e-6 else f"{t:.2f} s"


def span(start: float, end: float) -> str:
    return f"{seconds(float(start))[:-2]}–{seconds(float(end))}"
