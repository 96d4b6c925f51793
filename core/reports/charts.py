"""The report's charts (matplotlib, PNG), one per section of the figures.

Drawn from the figures of `core.reports.figures` only, never from the database, so what the PDF
shows is exactly what `--json` says. Figures are made with matplotlib's object API (no pyplot
state), so a report can be drawn in a worker thread while the service runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from matplotlib.figure import Figure

from core.reports.drawing import (
    BAD,
    CHANNEL_COLOURS,
    GOOD,
    NEUTRAL,
    WARN,
    Chart,
    cjk_font,
    label_axes,
    show_empty,
    side_by_side,
    titled_figure,
)


def weekly_channels(figures: dict[str, Any], font: str) -> Chart:
    title = "每周投诉（按渠道） Complaints per week by channel"
    figure, axes = titled_figure(title, font)
    weeks = figures["weekly_by_channel"]
    channels = sorted({c for week in weeks for c in week["by_channel"]})
    if not channels:
        show_empty(axes, font)
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
    figure, axes = titled_figure(title, font)
    rows = figures["by_category_department"]
    if not rows:
        show_empty(axes, font)
        return Chart("categories", title, figure)
    labels = [f"{row['category']} / {row['department']}" for row in rows]
    bars = axes.barh(labels, [row["count"] for row in rows], color=NEUTRAL)
    axes.bar_label(bars)
    axes.invert_yaxis()
    axes.set_xlabel("投诉数 complaints", fontfamily=font)
    return Chart("categories", title, figure)


def deadlines(figures: dict[str, Any], font: str) -> Chart:
    title = "各环节时限：按时 vs 超时 Deadlines met vs breached"
    figure, axes = titled_figure(title, font)
    stages = figures["stages"]
    if not stages:
        show_empty(axes, font)
        return Chart("deadlines", title, figure)
    names = [row["stage"] for row in stages]
    series = (
        ([r["met"] for r in stages], "按时 met", GOOD),
        ([r["breached"] for r in stages], "超时 breached", BAD),
    )
    for bars in side_by_side(axes, len(names), series, 0.4):
        axes.bar_label(bars, fontsize=7)
    axes.set_xticks(list(range(len(names))), names, rotation=30, ha="right")
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
            show_empty(axes, font)
            continue
        series = (
            ([row[part][key] or 0 for row in rows], label, colour)
            for key, label, colour in (
                ("median_hours", "中位数 median", "#64b5f6"),
                ("p90_hours", "90分位 p90", "#1565c0"),
            )
        )
        for bars in side_by_side(axes, len(rows), series, 0.4):
            axes.bar_label(bars, fmt="%.1f", fontsize=7)
        axes.set_xticks(list(range(len(rows))), [row["department"] for row in rows], rotation=30, ha="right")
        axes.set_ylabel("小时 hours", fontfamily=font)
        axes.legend(prop={"family": font, "size": 8})
    return Chart("handling_times", title, figure)


def escalations(figures: dict[str, Any], font: str) -> Chart:
    title = "升级（按级别） Escalations by level"
    figure, axes = titled_figure(title, font)
    rows = figures["escalations"]
    if not rows:
        show_empty(axes, font)
        return Chart("escalations", title, figure)
    names = [row["department"] for row in rows]
    series = (
        ([r[key] for r in rows], label, colour)
        for label, key, colour in (
            ("一级 level 1", "level1", WARN),
            ("二级 level 2", "level2", BAD),
            ("人工 manual", "manual", NEUTRAL),
        )
    )
    for bars in side_by_side(axes, len(rows), series, 0.27):
        axes.bar_label(bars, fontsize=7)
    axes.set_xticks(list(range(len(rows))), names)
    axes.margins(y=0.15)
    axes.legend(prop={"family": font}, loc="upper left", bbox_to_anchor=(1.01, 1))
    return Chart("escalations", title, figure)


def satisfaction(figures: dict[str, Any], font: str) -> Chart:
    shown = figures["satisfaction"]
    mean = "—" if shown["mean"] is None else f"{shown['mean']:.2f}"
    title = f"满意度评分（均值 {mean}，回复 {shown['answered']}/{shown['surveyed']}） Satisfaction scores"
    figure, axes = titled_figure(title, font)
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
    figure, axes = titled_figure(title, font, height=max(4.2, 1.6 + 0.32 * len(rows)))
    if not rows:
        show_empty(axes, font)
        return Chart("follow_up", title, figure)
    labels = [("[警告 warning] " if entry["warning"] else "") + label for label, entry in rows]
    series = [
        ([100 * (entry[key] or 0) for _, entry in rows], label, colour)
        for key, label, colour in (
            ("completion_rate", "完成率 completion", NEUTRAL),
            ("quality_rate", "质量合格率 quality", GOOD),
        )
    ]
    for bars, (values, _, _) in zip(
        side_by_side(axes, len(rows), series, 0.4, horizontal=True), series, strict=True
    ):
        for bar, value in zip(bars, values, strict=True):
            if value < below:  # under the warning line: red outline and hatching
                bar.set_edgecolor(BAD)
                bar.set_hatch("///")
    axes.axvline(100 * targets["completion"], color=NEUTRAL, linestyle="--", linewidth=1)
    axes.axvline(100 * targets["quality"], color=GOOD, linestyle="--", linewidth=1)
    axes.axvline(below, color=BAD, linestyle=":", linewidth=1.5, label=f"警告线 warning {below:.0f}%")
    axes.set_yticks(list(range(len(rows))), labels)
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
    figure, axes = titled_figure(title, font)
    if not shown["total"]:
        show_empty(axes, font)
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
    figure, axes = titled_figure(title, font)
    rows = figures["top_courses"]
    if not rows:
        show_empty(axes, font)
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
            label_axes(axes, font)
    return charts
