"""Render a MonthReport or raw samples as a text table, JSON, CSV (UTF-8 with BOM) or XLSX, every text
cell that a spreadsheet would take for a formula (=, +, -, @, tab, CR first) written as plain text."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

from xaprobe.collector.formats import Formats
from xaprobe.collector.i18n import labels
from xaprobe.collector.reports import MonthReport
from xaprobe.months import DEFAULT_TZ, utc_now

FORMATS = ("table", "json", "csv", "xlsx")
RAW_COLUMNS = ("id", "device_id", "seq", "commune_code", "started_at", "received_at", "engine", "status",
               "operator", "link_name", "access", "download_mbps", "upload_mbps", "latency_ms", "jitter_ms",
               "bytes_down", "bytes_up", "clock_suspect", "site_id")
# what Excel and LibreOffice read as the start of a formula (a probe names its own operator and link)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def is_formula_like(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def _csv_cell(value: Any) -> Any:
    """A leading apostrophe makes the spreadsheet show the text as it is; numbers stay numbers."""
    if value is None:
        return ""
    return "'" + value if is_formula_like(value) else value


# the report's columns: (label key, spreadsheet number format); percentages are shares (0..1) shown as %
REPORT_COLUMNS = (("code", "@"), ("commune", "@"), ("operator", "@"), ("samples", "#,##0"), ("failed", "#,##0"),
                  ("target", "#,##0"), ("percent", "0.0%"), ("needed_per_day", "#,##0.0"), ("projected", "#,##0"),
                  ("status", "@"), ("download_median", "#,##0.0"), ("download_p10", "#,##0.0"),
                  ("download_p90", "#,##0.0"), ("upload_median", "#,##0.0"), ("latency_median", "#,##0"),
                  ("share_above_pct", "0.0%"), ("sites_count", "#,##0"), ("residential_pct", "0.0%"),
                  ("min_residential_pct", "0.0%"), ("top_site_pct", "0.0%"))
PERCENT_COLUMNS = frozenset(i for i, (_, fmt) in enumerate(REPORT_COLUMNS) if fmt.endswith("%"))
WIDTHS = {"@": 14, "#,##0": 10, "#,##0.0": 12, "0.0%": 11}


def report_rows(report: MonthReport, language: str, percent_scale: float = 1.0) -> tuple[list[str], list[list[Any]]]:
    """One row per commune for all its operators (labelled as the commune's total), then one per operator;
    percentages as shares times percent_scale (1 for a spreadsheet's % format, 100 for CSV: both on one scale)."""
    t = labels(language)
    header = [t[key] for key, _ in REPORT_COLUMNS]
    if percent_scale != 1:
        header = [f"{h} (%)" if i in PERCENT_COLUMNS else h for i, h in enumerate(header)]
    rows: list[list[Any]] = []

    def scaled(share: float | None) -> float | None:
        return None if share is None else round(share * percent_scale, 6)

    for c in report.communes:
        base = [c.code, c.name]
        cov = c.coverage
        rows.append(base + [t["commune_total"], c.samples, c.failed, c.target, scaled(c.percent / 100),
                            c.needed_per_day, c.projected, t[c.status], None, None, None, None, None, None,
                            cov.site_count, scaled(cov.residential_share),
                            scaled(cov.min_residential / 100 if cov.min_residential else None), scaled(cov.top_share)])
        for op, o in c.operators.items():
            rows.append(base + [op, o.samples, o.failed, None, None, None, None, None, o.download_mbps.median,
                                o.download_mbps.p10, o.download_mbps.p90, o.upload_mbps.median,
                                o.latency_ms.median, scaled(o.share_above_threshold), None, None, None, None])
    return header, rows


def to_csv(header: list[str], rows: list[list[Any]]) -> bytes:
    """CSV in UTF-8 with a BOM, so Excel shows Vietnamese letters correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([_csv_cell(v) for v in header])
    writer.writerows([_csv_cell(v) for v in row] for row in rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def sheet_name(text: str) -> str:
    """A valid worksheet name: none of []:*?/\\, at most 31 characters."""
    return "".join("-" if ch in "[]:*?/\\" else ch for ch in text)[:31]


def to_xlsx(header: list[str], rows: list[list[Any]], title: str, title_block: list[str] | None = None,
            formats: list[str] | None = None) -> bytes:
    """One sheet named title: the title block's lines (bold first), the header (bold, frozen below), the rows;
    formats gives each column's number format (and its width)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = sheet_name(title)
    lines = title_block or []
    for r, line in enumerate(lines, start=1):
        sheet.cell(r, 1, line).font = Font(bold=r == 1, size=14 if r == 1 else 11)
    first = len(lines) + (1 if lines else 0) + 1
    for c, value in enumerate(header, start=1):
        sheet.cell(first, c, value).font = Font(bold=True)
    for r, row in enumerate(rows, start=first + 1):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(r, c, value.replace(tzinfo=None) if hasattr(value, "tzinfo") and value.tzinfo else value)
            if is_formula_like(value):  # openpyxl stores "=..." as a live formula: make it a quoted string
                cell.data_type = "s"
                cell.quotePrefix = True
            elif formats and value is not None and not isinstance(value, str):
                cell.number_format = formats[c - 1]
    if formats:
        from openpyxl.utils import get_column_letter

        for c, fmt in enumerate(formats, start=1):
            width = max(WIDTHS.get(fmt, 18), min(len(str(header[c - 1])) + 2, 28))
            sheet.column_dimensions[get_column_letter(c)].width = 30 if c == 2 and fmt == "@" else width
    sheet.freeze_panes = sheet.cell(first + 1, 1).coordinate
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def title_block(report: MonthReport, language: str, generated_at: dt.datetime, timezone: str) -> list[str]:
    """What a forwarded report must say about itself: province, month, when it was made, target, threshold."""
    t, f = labels(language), Formats(language, timezone)
    return [t["report_title"].format(province=report.province_name, month=f.month(report.month)),
            f'{t["generated_at"]}: {f.datetime(generated_at)} ({f.zone_note()})',
            f'{t["target"]}: {f.integer(report.target)} {t["target_unit"]}',
            f'{t["threshold"]}: {f.number(report.threshold_mbps)} Mbit/s',
            t["commune_total_note"]]


def to_table(report: MonthReport, language: str, timezone: str = DEFAULT_TZ) -> str:
    t, f = labels(language), Formats(language, timezone)
    columns = [t["samples"], t["failed"], t["target"], "%", t["projected"]]
    widths = [max(len(c), 6) for c in columns]
    lines = [f'{report.province_name} ({report.province}) · {f.month(report.month)}', ""]
    lines.append(f'{t["code"]:>6}  {t["commune"]:<28} ' + " ".join(f"{c:>{w}}" for c, w in zip(columns, widths))
                 + f'  {t["download"]} {t["median"]}')
    for c in report.communes:
        medians = ", ".join(f"{op} {f.number(o.download_mbps.median)}" for op, o in c.operators.items()
                            if o.download_mbps.median is not None)
        values = [f.integer(c.samples), f.integer(c.failed), f.integer(c.target), f.number(c.percent),
                  f.integer(c.projected)]
        lines.append(f"{c.code:>6}  {c.name[:28]:<28} " + " ".join(f"{v:>{w}}" for v, w in zip(values, widths))
                     + f"  {medians or '-'}")
    return "\n".join(lines) + "\n"


def render_report(report: MonthReport, fmt: str, language: str, generated_at: dt.datetime | None = None,
                  timezone: str = DEFAULT_TZ) -> bytes:
    """The report in a format: JSON (the dataclasses), a text table, CSV (percentages 0..100) or XLSX (a title
    block, Vietnamese sheet name, number and percent formats, widths)."""
    if fmt == "json":
        return (json.dumps(report.as_json(), ensure_ascii=False, indent=1) + "\n").encode("utf-8")
    if fmt == "table":
        return to_table(report, language, timezone).encode("utf-8")
    if fmt == "csv":
        return to_csv(*report_rows(report, language, percent_scale=100))
    if fmt == "xlsx":
        header, rows = report_rows(report, language)
        t, f = labels(language), Formats(language, timezone)
        return to_xlsx(header, rows, f'{t["sheet_report"]} {f.short_month(report.month).replace("/", "-")}',
                       title_block(report, language, generated_at or utc_now(), timezone),
                       [fmt for _, fmt in REPORT_COLUMNS])
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def raw_header(language: str, timezone: str) -> list[str]:
    t, f = labels(language), Formats(language, timezone)
    zone = f.zone_note()
    return [f'{t["raw_" + c]} ({zone})' if c in ("started_at", "received_at") else t["raw_" + c] for c in RAW_COLUMNS]


def render_raw(rows: list[Any], fmt: str, title: str, language: str = "vi", timezone: str = DEFAULT_TZ) -> bytes:
    """Every sample with the page's language's headers and local times: ISO 8601 with the offset in CSV
    (2026-11-30T13:57:02+07:00), a date-time cell shown as 30/11/2026 13:57:02 in XLSX."""
    f = Formats(language, timezone)
    data = [[f.local(v) if isinstance(v, dt.datetime) else v for v in (getattr(r, c) for c in RAW_COLUMNS)]
            for r in rows]
    header = raw_header(language, timezone)
    if fmt == "csv":
        return to_csv(header, [[v.isoformat(timespec="seconds") if isinstance(v, dt.datetime) else v for v in row]
                               for row in data])
    formats = ["dd/mm/yyyy hh:mm:ss" if c in ("started_at", "received_at") else
               "#,##0.00" if c.endswith(("_mbps", "_ms")) else "#,##0" if c.startswith("bytes") else "@"
               for c in RAW_COLUMNS]
    return to_xlsx(header, data, f'{labels(language)["sheet_raw"]} {title}', None, formats)
