"""The few sentences that head the managers' report, also the caption of its chat message.

Apart from the charts so that the chat and the scheduler can word a report without loading matplotlib
(a second of start-up for every command).
"""

from __future__ import annotations

from typing import Any


def summary_lines(figures: dict[str, Any]) -> list[str]:
    """The few sentences a manager reads first (also the caption of the chat message)."""
    totals, satisfaction_ = figures["totals"], figures["satisfaction"]
    met = sum(s["met"] for s in figures["stages"])
    breached = sum(s["breached"] for s in figures["stages"])
    share = f"{100 * met / (met + breached):.1f}%" if met + breached else "—"
    mean = "—" if satisfaction_["mean"] is None else f"{satisfaction_['mean']:.2f}"
    warnings = [t["department"] for t in figures["follow_up"]["teams"] if t["warning"]] + [
        s["name"] or "unassigned" for s in figures["follow_up"]["staff"] if s["warning"]
    ]
    scope = figures["department"] or "全部门 all departments"
    lines = [
        f"{figures['month']} 月报 monthly report — {scope}",
        f"收到 received {totals['received']}（重大 major {totals['major']}），"
        f"已结案 closed {totals['closed']}，未结 open {totals['open']}",
        f"时限按时率 deadlines met {share}（按时 {met} / 超时 {breached}）",
        f"满意度均值 mean satisfaction {mean}"
        f"（回复 {satisfaction_['answered']}/{satisfaction_['surveyed']}）",
        f"上级渠道 second instance {figures['second_instance']['total']}",
    ]
    if warnings:
        lines.append("回访警告 follow-up warnings (<90%): " + ", ".join(warnings))
    return lines
