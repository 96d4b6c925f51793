"""The report's charts (matplotlib, PNG) and the PDF that a manager reads in two minutes.

Drawn from the figures of `core.report_figures` only, never from the database, so what the PDF
shows is exactly what `--json` says. Figures are made with matplotlib's object API (no pyplot
state), so a report can be drawn in a worker thread while the service runs.

Labels are Chinese and English: a CJK font must be present, or every Chinese label would be an
empty box. `cjk_font()` finds one (Debian's fonts-noto-cjk or fonts-wqy-microhei) and says clearly
when there is none.
"""

from __future__ import annotations

import io
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only

from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.image import imread

from core.messages import Document
from core.report_summary import summary_lines

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


def _figure(title: str, font: str, height: float = 4.2) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(8.27, height), dpi=110, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, fontfamily=font, fontsize=12)
    return figure, axes


def _empty(axes: Axes, font: str) -> None:
    axes.text(0.5, 0.5, "本月无数据 / no data this month", ha="center", va="center", fontfamily=font)
    axes.set_axis_off()


def _label_axes(axes: Axes, font: str) -> None:
    for label in (*axes.get_xticklabels(), *axes.get_yticklabels()):
        label.set_fontfamily(font)


def weekly_channels(figures: dict[str, Any], font: str) -> Chart:
    title = "每周投诉（按渠道） Complaints per week by channel"
    figure, axes = _figure(title, font)
    weeks = figures["weekly_by_channel"]
    channels = sorted({c for week in weeks for c in week["by_channel"]})
    if not channels:
        _empty(axes, font)
    labels = [week["week"][5:] for week in weeks]
    bottom = [0] * len(weeks)
    for index, channel in enumerate(channels):
        values = [week["by_channel"].get(channel, 0) for week in weeks]
        axes.bar(
            labels, values, bottom=bottom, label=channel, color=CHANNEL_COLOURS[index % len(CHANNEL_COLOURS)]
        )
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    if channels:
        axes.set_xlabel("周起始 week from", fontfamily=font)
        axes.set_ylabel("投诉数 complaints", fontfamily=font)
        axes.legend(prop={"family": font})
    return Chart("weekly_channels", title, figure)


def categories(figures: dict[str, Any], font: str) -> Chart:
    title = "类别与部门 By category and department"
    figure, axes = _figure(title, font)
    rows = figures["by_category_department"]
    if not rows:
        _empty(axes, font)
        return Chart("categories", title, figure)
    labels = [f"{row['category']} / {row['department']}" for row in rows]
    bars = axes.barh(labels, [row["count"] for row in rows], color=NEUTRAL)
    axes.bar_label(bars)
    axes.invert_yaxis()
    axes.set_xlabel("投诉数 complaints", fontfamily=font)
    return Chart("categories", title, figure)


def deadlines(figures: dict[str, Any], font: str) -> Chart:
    title = "各环节时限：按时 vs 超时 Deadlines met vs breached"
    figure, axes = _figure(title, font)
    stages = figures["stages"]
    if not stages:
        _empty(axes, font)
        return Chart("deadlines", title, figure)
    names = [row["stage"] for row in stages]
    positions = range(len(names))
    met = axes.bar(
        [p - 0.2 for p in positions], [r["met"] for r in stages], 0.4, label="按时 met", color=GOOD
    )
    late = axes.bar(
        [p + 0.2 for p in positions], [r["breached"] for r in stages], 0.4, label="超时 breached", color=BAD
    )
    axes.bar_label(met, fontsize=7)
    axes.bar_label(late, fontsize=7)
    axes.set_xticks(list(positions), names, rotation=30, ha="right")
    axes.legend(prop={"family": font})
    return Chart("deadlines", title, figure)


def handling_times(figures: dict[str, Any], font: str) -> Chart:
    title = "受理与结果用时（小时，中位数 / 90分位） Hours to claim and to result (median / p90)"
    figure = Figure(figsize=(8.27, 4.2), dpi=110, layout="constrained")
    figure.suptitle(title, fontfamily=font, fontsize=12)
    rows = figures["handling_times"]
    # Two panels: hours to claim are a fraction of hours to result, one scale would hide them.
    for index, (part, name) in enumerate((("claim", "受理 claim"), ("result", "结果 result"))):
        axes = figure.add_subplot(1, 2, index + 1)
        axes.set_title(name, fontfamily=font, fontsize=10)
        if not rows:
            _empty(axes, font)
            continue
        positions = range(len(rows))
        for offset, (key, label, colour) in zip(
            (-0.2, 0.2),
            (("median_hours", "中位数 median", "#64b5f6"), ("p90_hours", "90分位 p90", "#1565c0")),
            strict=True,
        ):
            values = [row[part][key] or 0 for row in rows]
            bars = axes.bar([p + offset for p in positions], values, 0.4, label=label, color=colour)
            axes.bar_label(bars, fmt="%.1f", fontsize=7)
        axes.set_xticks(list(positions), [row["department"] for row in rows], rotation=30, ha="right")
        axes.set_ylabel("小时 hours", fontfamily=font)
        axes.legend(prop={"family": font, "size": 8})
    return Chart("handling_times", title, figure)


def escalations(figures: dict[str, Any], font: str) -> Chart:
    title = "升级（按级别） Escalations by level"
    figure, axes = _figure(title, font)
    rows = figures["escalations"]
    if not rows:
        _empty(axes, font)
        return Chart("escalations", title, figure)
    names = [row["department"] for row in rows]
    series = (
        ("一级 level 1", "level1", WARN),
        ("二级 level 2", "level2", BAD),
        ("人工 manual", "manual", NEUTRAL),
    )
    for index, (label, key, colour) in enumerate(series):
        bars = axes.bar(
            [p + (index - 1) * 0.27 for p in range(len(rows))],
            [r[key] for r in rows],
            0.27,
            label=label,
            color=colour,
        )
        axes.bar_label(bars, fontsize=7)
    axes.set_xticks(list(range(len(rows))), names)
    axes.margins(y=0.15)
    axes.legend(prop={"family": font}, loc="upper left", bbox_to_anchor=(1.01, 1))
    return Chart("escalations", title, figure)


def satisfaction(figures: dict[str, Any], font: str) -> Chart:
    shown = figures["satisfaction"]
    mean = "—" if shown["mean"] is None else f"{shown['mean']:.2f}"
    title = f"满意度评分（均值 {mean}，回复 {shown['answered']}/{shown['surveyed']}） Satisfaction scores"
    figure, axes = _figure(title, font)
    scores = shown["scores"]
    colours = [BAD if int(s) <= 2 else (WARN if int(s) == 3 else GOOD) for s in scores]
    bars = axes.bar(list(scores), list(scores.values()), color=colours)
    axes.bar_label(bars)
    axes.set_xlabel("评分 score", fontfamily=font)
    axes.set_ylabel("回访数 follow-ups", fontfamily=font)
    return Chart("satisfaction", title, figure)


def follow_up(figures: dict[str, Any], font: str) -> Chart:
    shown = figures["follow_up"]
    targets = shown["targets"]
    below = 100 * targets["warning_below"]
    title = (
        f"回访完成率与质量合格率（目标 {100 * targets['completion']:.0f}% / {100 * targets['quality']:.0f}%，"
        f"低于 {below:.0f}% 警告）\nFollow-up completion and quality pass rate per team and staff member"
    )
    rows = [(f"[团队 team] {t['department']}", t) for t in shown["teams"]] + [
        (f"{s['name'] or '未分配 unassigned'} ({s['department']})", s) for s in shown["staff"]
    ]
    figure, axes = _figure(title, font, height=max(4.2, 1.6 + 0.32 * len(rows)))
    if not rows:
        _empty(axes, font)
        return Chart("follow_up", title, figure)
    labels = [("[警告 warning] " if entry["warning"] else "") + label for label, entry in rows]
    positions = range(len(rows))
    for offset, key, label, colour in (
        (-0.2, "completion_rate", "完成率 completion", NEUTRAL),
        (0.2, "quality_rate", "质量合格率 quality", GOOD),
    ):
        values = [100 * (entry[key] or 0) for _, entry in rows]
        bars = axes.barh([p + offset for p in positions], values, 0.4, label=label, color=colour)
        for bar, value in zip(bars, values, strict=True):
            if value < below:  # under the warning line: red outline and hatching
                bar.set_edgecolor(BAD)
                bar.set_hatch("///")
    axes.axvline(100 * targets["completion"], color=NEUTRAL, linestyle="--", linewidth=1)
    axes.axvline(100 * targets["quality"], color=GOOD, linestyle="--", linewidth=1)
    axes.axvline(below, color=BAD, linestyle=":", linewidth=1.5, label=f"警告线 warning {below:.0f}%")
    axes.set_yticks(list(positions), labels)
    for tick, (_, entry) in zip(axes.get_yticklabels(), rows, strict=True):
        if entry["warning"]:
            tick.set_color(BAD)
    axes.invert_yaxis()
    axes.set_xlim(0, 105)
    axes.set_xlabel("%", fontfamily=font)
    axes.legend(prop={"family": font, "size": 8}, loc="upper left", bbox_to_anchor=(1.01, 1))
    return Chart("follow_up", title, figure)


def second_instance(figures: dict[str, Any], font: str) -> Chart:
    shown = figures["second_instance"]
    title = f"上级渠道（二次投诉）{shown['total']} 件及结果 Second-instance cases and outcome"
    figure, axes = _figure(title, font)
    if not shown["total"]:
        _empty(axes, font)
        return Chart("second_instance", title, figure)
    names = {
        "in_progress": "处理中 in progress",
        "result_reported": "已答复 result reported",
        "closed": "已结案 closed",
    }
    bars = axes.bar(
        [names[k] for k in shown["by_outcome"]],
        list(shown["by_outcome"].values()),
        color=[WARN, NEUTRAL, GOOD],
    )
    axes.bar_label(bars)
    return Chart("second_instance", title, figure)


def top_courses(figures: dict[str, Any], font: str) -> Chart:
    title = "投诉最多的课程 Courses with the most complaints"
    figure, axes = _figure(title, font)
    rows = figures["top_courses"]
    if not rows:
        _empty(axes, font)
        return Chart("top_courses", title, figure)
    bars = axes.barh([row["course"][:30] for row in rows], [row["count"] for row in rows], color=WARN)
    axes.bar_label(bars)
    axes.invert_yaxis()
    return Chart("top_courses", title, figure)


CHARTS: tuple[Callable[[dict[str, Any], str], Chart], ...] = (
    weekly_channels,
    categories,
    deadlines,
    handling_times,
    escalations,
    satisfaction,
    follow_up,
    second_instance,
    top_courses,
)


def build_charts(figures: dict[str, Any]) -> list[Chart]:
    font = cjk_font()
    charts = [draw(figures, font) for draw in CHARTS]
    for chart in charts:
        for axes in chart.figure.axes:
            _label_axes(axes, font)
    return charts


def _cover(figures: dict[str, Any], font: str) -> Figure:
    figure = Figure(figsize=(8.27, 11.69), dpi=110)
    figure.text(0.08, 0.93, "投诉处理月报 Complaints report", fontfamily=font, fontsize=20)
    lines = [part for line in summary_lines(figures) for part in textwrap.wrap(line, 80)]
    for index, line in enumerate(lines):
        figure.text(0.08, 0.86 - index * 0.035, line, fontfamily=font, fontsize=11)
    figure.text(
        0.08,
        0.84 - len(lines) * 0.035,
        "口径 Definitions: 本月收到的投诉 tickets received this month;\n"
        "按时 = 在截止前完成 met by the deadline;\n"
        "超时 = 逾期完成或截至统计时仍逾期未完成 late or still open past due; 用时为自收到起的日历小时\n"
        "elapsed hours from entry; 回访质量合格 = 按时完成且有评分 done on time with a score.\n"
        f"统计时间 as of {figures['as_of']}",
        fontfamily=font,
        fontsize=9,
        va="top",
    )
    return figure


@dataclass
class Rendered:
    pdf: Path
    pngs: list[Path]
    charts: list[Chart]


def render_report(figures: dict[str, Any], out_dir: Path, now: datetime) -> Rendered:
    """Write `report-<month>[-<dept>].pdf` and one PNG per chart into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    font = cjk_font()
    # TrueType (Type 42) in the PDF: smaller than Type 3 outlines, and its text can be searched.
    with matplotlib.rc_context({"font.family": [font, "DejaVu Sans"], "pdf.fonttype": 42}):
        return _render(figures, out_dir, now, font)


def _render(figures: dict[str, Any], out_dir: Path, now: datetime, font: str) -> Rendered:
    charts = build_charts(figures)
    stem = f"report-{figures['month']}" + (f"-{figures['department']}" if figures["department"] else "")
    pngs = []
    for chart in charts:
        path = out_dir / f"{stem}-{chart.name}.png"
        chart.figure.savefig(path)
        pngs.append(path)
    pdf = out_dir / f"{stem}.pdf"
    with PdfPages(
        pdf, metadata={"Title": f"Complaints report {figures['month']}", "CreationDate": now}
    ) as pages:
        pages.savefig(_cover(figures, font))
        for chart in charts:
            pages.savefig(chart.figure)
    return Rendered(pdf, pngs, charts)


OVERVIEW = ("weekly_channels", "deadlines", "satisfaction", "follow_up")


def overview_png(rendered: Rendered) -> bytes:
    """One picture of the charts a manager looks at first, for a chat that shows pictures, not PDFs."""
    pictures = {path.stem.rsplit("-", 1)[-1]: path for path in rendered.pngs}
    figure = Figure(figsize=(11, 8.5), dpi=100, layout="constrained")
    for index, name in enumerate(OVERVIEW):
        axes = figure.add_subplot(2, 2, index + 1)
        axes.imshow(imread(pictures[name]))
        axes.set_axis_off()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def report_documents(figures: dict[str, Any], now: datetime, overview: bool) -> tuple[Document, ...]:
    """The PDF (and the overview picture) as documents a message can carry."""
    with tempfile.TemporaryDirectory(prefix="complaintbot-report-") as folder:
        rendered = render_report(figures, Path(folder), now)
        pdf = Document(rendered.pdf.name, "application/pdf", rendered.pdf.read_bytes())
        if not overview:
            return (pdf,)
        picture = Document(f"{rendered.pdf.stem}-overview.png", "image/png", overview_png(rendered))
        return pdf, picture
