"""The province's monthly report as a PDF made on the server with reportlab (pure Python, from PyPI; nothing
fetched at run time): title block, the communes' counts, the table of communes behind first, the operators
compared. Vietnamese letters need a TrueType font: DejaVu Sans, from Debian's fonts-dejavu-core."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from xaprobe.collector.exports import title_block
from xaprobe.collector.formats import Formats
from xaprobe.collector.i18n import labels
from xaprobe.collector.reports import STATUSES, MonthReport

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
             Path("/usr/local/share/fonts/dejavu"))


class NoFont(RuntimeError):
    """No font with Vietnamese letters is installed."""


def _fonts() -> tuple[str, str]:
    """Register DejaVu Sans (regular and bold) with reportlab once; return their names."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if "XaprobeSans" in pdfmetrics.getRegisteredFontNames():
        return "XaprobeSans", "XaprobeSans-Bold"
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.exists() and bold.exists():
            pdfmetrics.registerFont(TTFont("XaprobeSans", str(regular)))
            pdfmetrics.registerFont(TTFont("XaprobeSans-Bold", str(bold)))
            return "XaprobeSans", "XaprobeSans-Bold"
    raise NoFont("DejaVu Sans is not installed (Debian: apt install fonts-dejavu-core)")


def report_pdf(report: MonthReport, language: str, generated_at: dt.datetime, timezone: str) -> bytes:
    """The report as an A4 landscape PDF in the language; raise NoFont when no usable font is installed."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    regular, bold = _fonts()
    t, f = labels(language), Formats(language, timezone)
    body = ParagraphStyle("body", fontName=regular, fontSize=9, leading=12)
    heading = ParagraphStyle("heading", fontName=bold, fontSize=15, leading=19, spaceAfter=4)
    head = ParagraphStyle("head", fontName=bold, fontSize=8, leading=10)
    subheading = ParagraphStyle("subheading", fontName=bold, fontSize=11, leading=15, spaceBefore=8, spaceAfter=4)
    lines = title_block(report, language, generated_at, timezone)
    story: list[Any] = [Paragraph(escape(lines[0]), heading)] + [Paragraph(escape(line), body) for line in lines[1:4]]
    counts = report.counts()
    samples, needed = sum(c.samples for c in report.communes), sum(c.target for c in report.communes)
    story += [Spacer(1, 3 * mm), Paragraph(" · ".join(f"{t[s]}: <b>{f.integer(counts[s])}</b>"
                                                     for s in ("done", "on_track", "behind", "no_data")), body),
              Paragraph(f'{t["samples_vs_needed"]}: <b>{f.integer(samples)} / {f.integer(needed)}</b> · '
                        f'{t["days_left"]}: {f.number(report.days_left)}', body)]
    table_style = TableStyle([("FONT", (0, 0), (-1, -1), regular, 8), ("FONT", (0, 0), (-1, 0), bold, 8),
                              ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde3ea")),
                              ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#8a94a3")),
                              ("ALIGN", (1, 1), (-2, -1), "RIGHT"), ("VALIGN", (0, 0), (-1, -1), "TOP")])
    if report.operators:
        story.append(Paragraph(t["operators_title"], subheading))
        rows = [[t["operator"], t["samples"], t["download_median"], t["download_p10"], t["share_below"],
                 t["upload_median"], t["latency_median"]]]
        rows += [[op, f.integer(o.samples), f.number(o.download_mbps.median), f.number(o.download_mbps.p10),
                  f.percent(None if o.share_above_threshold is None else 1 - o.share_above_threshold),
                  f.number(o.upload_mbps.median), f.integer(o.latency_ms.median)]
                 for op, o in report.operators.items()]
        # an operator's name is what a probe said: text, never reportlab markup
        cells = [[Paragraph(escape(v), head) for v in rows[0]]]
        cells += [[Paragraph(escape(str(v)), body) if i == 0 else v for i, v in enumerate(r)] for r in rows[1:]]
        story.append(Table(cells, repeatRows=1, style=table_style))
    story.append(Paragraph(t["communes_title"], subheading))
    rows = [[t["commune"], t["samples"] + " / " + t["target"], t["percent"], t["needed_per_day"], t["projected"],
             t["status"], t["download_median"]]]
    ordered = sorted(report.communes, key=lambda c: (STATUSES.index(c.status), c.percent))
    for c in ordered:
        medians = ", ".join(f"{op} {f.number(o.download_mbps.median)}" for op, o in c.operators.items()
                            if o.download_mbps.median is not None)
        rows.append([c.name, f"{f.integer(c.samples)} / {f.integer(c.target)}", f.percent(c.percent / 100),
                     t["month_over"] if c.needed_per_day is None else f.number(c.needed_per_day),
                     f.integer(c.projected), t[c.status], medians or "–"])
    widths = [55 * mm, 28 * mm, 20 * mm, 24 * mm, 24 * mm, 30 * mm, 70 * mm]
    story.append(Table([[Paragraph(escape(v), head) for v in rows[0]]] + rows[1:], colWidths=widths, repeatRows=1,
                       style=table_style))
    out = io.BytesIO()
    title = lines[0]

    def footer(canvas: Any, doc: Any) -> None:
        canvas.setFont(regular, 7)
        canvas.drawString(12 * mm, 7 * mm, f"{title} · {doc.page}")

    SimpleDocTemplate(out, pagesize=landscape(A4), leftMargin=12 * mm, rightMargin=12 * mm, topMargin=12 * mm,
                      bottomMargin=12 * mm, title=title, author="xaprobe").build(
        story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()
