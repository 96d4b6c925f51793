"""How the report's charts look: the CJK font, the colours, a titled figure, the "no data" panel and
the side-by-side bars most charts are made of.

Labels are Chinese and English: a CJK font must be present, or every Chinese label would be an
empty box. `cjk_font()` finds one (Debian's fonts-noto-cjk or fonts-wqy-microhei) and says clearly
when there is none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only

from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

# Where Debian's CJK font packages put their files; tried in this order.
CJK_FONT_FILES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)
CJK_FAMILIES = ("Noto Sans CJK SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei")
GOOD, BAD, WARN, NEUTRAL = "#2e7d32", "#c62828", "#ef6c00", "#1565c0"
CHANNEL_COLOURS = ("#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#795548")


class FontMissing(RuntimeError):
    """No CJK font is installed: Chinese labels cannot be drawn."""


@cache  # registered once per process: `addfont` would list the same file again on every report
def cjk_font() -> str:
    """The family name of an installed CJK font, registered with matplotlib."""
    known = {entry.name for entry in font_manager.fontManager.ttflist}
    for path in CJK_FONT_FILES:
        if Path(path).exists():
            font_manager.fontManager.addfont(path)  # the cache may predate the font's installation
            known = {entry.name for entry in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in known:
            return family
    raise FontMissing(
        "no CJK font found for the report's Chinese labels: install Debian's fonts-noto-cjk or "
        "fonts-wqy-microhei"
    )


@dataclass
class Chart:
    name: str  # file name without .png
    title: str
    figure: Figure


def titled_figure(title: str, font: str, height: float = 4.2) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(8.27, height), dpi=110, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, fontfamily=font, fontsize=12)
    return figure, axes


def show_empty(axes: Axes, font: str) -> None:
    axes.text(0.5, 0.5, "本月无数据 / no data this month", ha="center", va="center", fontfamily=font)
    axes.set_axis_off()


def label_axes(axes: Axes, font: str) -> None:
    for label in (*axes.get_xticklabels(), *axes.get_yticklabels()):
        label.set_fontfamily(font)


def side_by_side(
    axes: Axes,
    count: int,
    series: Iterable[tuple[Sequence[float], str, str]],
    width: float,
    *,
    horizontal: bool = False,
) -> list[BarContainer]:
    """One group of bars per position 0..count-1, a bar per series (values, label, colour) side by side
    around the position, each `width` wide."""
    series = list(series)
    drawn = []
    for index, (values, label, colour) in enumerate(series):
        offset = (index - (len(series) - 1) / 2) * width
        place = [p + offset for p in range(count)]
        draw = axes.barh if horizontal else axes.bar
        drawn.append(draw(place, values, width, label=label, color=colour))
    return drawn
