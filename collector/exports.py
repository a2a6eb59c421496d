"""Render a MonthReport or raw samples as a text table, JSON, CSV (UTF-8 with BOM) or XLSX, every text
cell that a spreadsheet would take for a formula (=, +, -, @, tab, CR first) written as plain text."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from xaprobe.collector.i18n import labels
from xaprobe.collector.reports import MonthReport

FORMATS = ("table", "json", "csv", "xlsx")
RAW_COLUMNS = ("id", "device_id", "seq", "commune_code", "started_at", "received_at", "engine", "status",
               "operator", "link_name", "access", "download_mbps", "upload_mbps", "latency_ms", "jitter_ms",
               "bytes_down", "bytes_up", "clock_suspect")
# what Excel and LibreOffice read as the start of a formula (a probe names its own operator and link)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def is_formula_like(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def _csv_cell(value: Any) -> Any:
    """A leading apostrophe makes the spreadsheet show the text as it is; numbers stay numbers."""
    if value is None:
        return ""
    return "'" + value if is_formula_like(value) else value


def report_rows(report: MonthReport, language: str) -> tuple[list[str], list[list[Any]]]:
    """One row per commune and operator (a commune with no data gets one row with no operator)."""
    t = labels(language)
    header = [t["code"], t["commune"], t["operator"], t["samples"], t["failed"], t["target"], t["percent"],
              t["projected"], t["status"], f'{t["download"]} {t["median"]}', f'{t["download"]} P10',
              f'{t["download"]} P90', f'{t["upload"]} {t["median"]}', f'{t["latency"]} {t["median"]}',
              t["share_above"]]
    rows: list[list[Any]] = []
    for c in report.communes:
        base = [c.code, c.name]
        rows.append(base + ["*", c.samples, c.failed, c.target, c.percent, c.projected, t[c.status],
                            None, None, None, None, None, None])
        for op, o in c.operators.items():
            rows.append(base + [op, o.samples, o.failed, None, None, None, None, o.download_mbps.median,
                                o.download_mbps.p10, o.download_mbps.p90, o.upload_mbps.median,
                                o.latency_ms.median, o.share_above_threshold])
    return header, rows


def to_csv(header: list[str], rows: list[list[Any]]) -> bytes:
    """CSV in UTF-8 with a BOM, so Excel shows Vietnamese letters correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([_csv_cell(v) for v in header])
    writer.writerows([_csv_cell(v) for v in row] for row in rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(header: list[str], rows: list[list[Any]], title: str) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    for r, row in enumerate([header, *rows], start=1):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(r, c, value.replace(tzinfo=None) if hasattr(value, "tzinfo") and value.tzinfo else value)
            if is_formula_like(value):  # openpyxl stores "=..." as a live formula: make it a quoted string
                cell.data_type = "s"
                cell.quotePrefix = True
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def to_table(report: MonthReport, language: str) -> str:
    t = labels(language)
    columns = [t["samples"], t["failed"], t["target"], "%", t["projected"]]
    widths = [max(len(c), 6) for c in columns]
    lines = [f'{report.province_name} ({report.province}) · {t["month"]} {report.month}', ""]
    lines.append(f'{t["code"]:>6}  {t["commune"]:<28} ' + " ".join(f"{c:>{w}}" for c, w in zip(columns, widths))
                 + f'  {t["download"]} {t["median"]}')
    for c in report.communes:
        medians = ", ".join(f"{op} {o.download_mbps.median}" for op, o in c.operators.items()
                            if o.download_mbps.median is not None)
        values = [c.samples, c.failed, c.target, c.percent, c.projected]
        lines.append(f"{c.code:>6}  {c.name[:28]:<28} " + " ".join(f"{v:>{w}}" for v, w in zip(values, widths))
                     + f"  {medians or '-'}")
    return "\n".join(lines) + "\n"


def render_report(report: MonthReport, fmt: str, language: str) -> bytes:
    if fmt == "json":
        return (json.dumps(report.as_json(), ensure_ascii=False, indent=1) + "\n").encode("utf-8")
    if fmt == "table":
        return to_table(report, language).encode("utf-8")
    header, rows = report_rows(report, language)
    if fmt == "csv":
        return to_csv(header, rows)
    if fmt == "xlsx":
        return to_xlsx(header, rows, f"{report.province} {report.month}")
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def render_raw(rows: list[Any], fmt: str, title: str) -> bytes:
    data = [[getattr(r, c) for c in RAW_COLUMNS] for r in rows]
    if fmt == "csv":
        return to_csv(list(RAW_COLUMNS), [[v.isoformat() if hasattr(v, "isoformat") else v for v in row]
                                          for row in data])
    return to_xlsx(list(RAW_COLUMNS), data, title)
