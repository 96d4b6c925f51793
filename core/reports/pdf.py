"""The report's documents: the PDF (a cover with the summary and definitions, then the charts), one PNG
per chart, and the overview picture for chats that show pictures rather than PDFs."""

from __future__ import annotations

import io
import tempfile
import textwrap
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.image import imread

from core.messages import Document
from core.reports.charts import build_charts
from core.reports.drawing import Chart, cjk_font
from core.reports.summary import summary_lines


def _cover(figures: dict[str, Any], font: str) -> Figure:
    figure = Figure(figsize=(8.27, 11.69), dpi=110)
    figure.text(0.08, 0.93, "投诉处理月报 Complaints report", fontfamily=font, fontsize=20)
    lines = [part for line in summary_lines(figures) for part in textwrap.wrap(line, 80)]
    for index, line in enumerate(lines):
        figure.text(0.08, 0.86 - index * 0.035, line, fontfamily=font, fontsize=11)
    figure.text(
        0.08,
        0.84 - len(lines) * 0.035,
        "口径 Definitions: 本月收到的投诉 tickets received this month (合并的计一次 merged ones once);\n"
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
