"""#14: exports an officer can forward. The XLSX read back (title block, Vietnamese sheet name, number and
percent formats, widths, commune totals labelled), percentages on one scale in CSV and XLSX, raw exports with
the page's language and local times, the print view, and the server-made PDF rendered to PNG by pdftoppm."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess

import pytest
from officer import BEHIND, DONE, province
from openpyxl import load_workbook


@pytest.fixture
def hatinh(tmp_path):
    with province(f"sqlite:///{tmp_path / 'c.db'}") as p:
        yield p


def test_xlsx_report_reads_back_with_title_formats_and_one_scale(hatinh):
    answer = hatinh.get("/export/report.xlsx", province="42", month="11/2026")
    book = load_workbook(io.BytesIO(answer.content))
    assert book.sheetnames == ["Báo cáo 11-2026"]
    sheet = book.active
    title = [sheet.cell(r, 1).value for r in range(1, 6)]
    assert "Hà Tĩnh" in title[0] and "tháng 11/2026" in title[0]
    assert title[1].startswith("Thời điểm lập: 20/11/2026 12:00")  # local time of the frozen clock
    assert "300" in title[2] and "10,0 Mbit/s" in title[3] and "Tổng xã" in title[4]
    header_row = next(r for r in range(1, 10) if sheet.cell(r, 1).value == "Mã")
    header = [c.value for c in sheet[header_row]]
    assert header[2] == "Nhà mạng" and header[6] == "% chỉ tiêu" and header[15] == "Tỷ lệ lần đo ≥ ngưỡng"
    assert header[16:] == ["Số điểm đo có mẫu", "Tỷ lệ mẫu từ khu dân cư", "Tỷ lệ khu dân cư tối thiểu",
                           "Tỷ lệ mẫu của điểm đo nhiều nhất"]  # #16: where in the commune
    assert sheet.freeze_panes == f"A{header_row + 1}"
    rows = {(r[0].value, r[2].value): r for r in sheet.iter_rows(min_row=header_row + 1)}
    total = rows[(BEHIND, "Tổng xã (mọi nhà mạng)")]
    assert total[3].value == 80 and total[3].number_format == "#,##0"
    assert total[6].value == pytest.approx(80 / 300, abs=1e-3) and total[6].number_format == "0.0%"
    assert total[7].value == 21.0 and total[9].value == "Chậm tiến độ"
    viettel = rows[(BEHIND, "Viettel")]
    assert viettel[15].value == 1.0 and viettel[15].number_format == "0.0%"  # 100 %, the same scale as 26.7 %
    assert viettel[10].number_format == "#,##0.0"
    assert sheet.column_dimensions["B"].width >= 25 and sheet.column_dimensions["P"].width >= 11
    assert rows[(DONE, "Tổng xã (mọi nhà mạng)")][9].value == "Đã đủ chỉ tiêu"


def test_csv_report_has_its_percentages_on_one_scale(hatinh):
    text = hatinh.get("/export/report.csv", province="42").content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    assert header[6] == "% chỉ tiêu (%)" and header[15] == "Tỷ lệ lần đo ≥ ngưỡng (%)"
    by = {(r[0], r[2]): r for r in rows[1:]}
    assert float(by[(BEHIND, "Tổng xã (mọi nhà mạng)")][6]) == pytest.approx(26.7)  # 80 of 300, in %
    assert float(by[(BEHIND, "Viettel")][15]) == 100.0  # not 1.0
    english = hatinh.get("/export/report.csv", province="42", lang="en").content.decode("utf-8-sig")
    assert "Commune total (all operators)" in english and "Share of tests ≥ threshold (%)" in english


def test_raw_exports_speak_the_pages_language_in_local_time(hatinh):
    text = hatinh.get("/export/raw.csv", commune=BEHIND, month="2026-11").content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    started = next(k for k in rows[0] if k.startswith("Bắt đầu đo"))
    assert "Asia/Ho_Chi_Minh (UTC+07:00)" in started and "Nhà mạng" in rows[0] and "Tải xuống (Mbit/s)" in rows[0]
    assert rows[0][started].endswith("+07:00") and "." not in rows[0][started]  # seconds, no microseconds
    first = min(r[started] for r in rows)
    assert first.startswith("2026-11-15T")  # 5:00 UTC on the 20th, minus 118 hours: 18:00 UTC on the 15th = 01:00
    xlsx = load_workbook(io.BytesIO(hatinh.get("/export/raw.xlsx", commune=BEHIND, lang="en").content)).active
    assert xlsx.title == "Samples Nov 2026"
    assert xlsx.cell(1, 3).value == "Sequence" and xlsx.cell(1, 5).value.startswith("Started (time Asia/Ho_Chi_Minh")
    cell = xlsx.cell(2, 5)
    assert cell.is_date and cell.number_format == "dd/mm/yyyy hh:mm:ss"


def test_print_view_and_pdf(hatinh, tmp_path):
    page = hatinh.get("/report", province="42", month="11/2026")
    assert page.status_code == 200 and "Hà Tĩnh" in page.text and 'id="communes"' in page.text
    assert 'id="operators"' in page.text and "/report.pdf?month=2026-11" in page.text
    assert "@media print" in hatinh.get("/static/xaprobe.css").text
    pdf = hatinh.get("/report.pdf", province="42", month="2026-11")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.content[:5] == b"%PDF-"
    if shutil.which("pdftoppm") is None:
        pytest.skip("needs pdftoppm (Debian's poppler-utils)")
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf.content)
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(path), str(tmp_path / "page")], check=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pages)  # 69 communes: two pages at least
    from conftest import REPO

    (REPO / "test-artifacts").mkdir(exist_ok=True)
    shutil.copy(pages[0], REPO / "test-artifacts" / "report-pdf-page1.png")
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout
    assert "Hà Tĩnh" in text and "tháng 11/2026" in text and "Xã Cẩm Xuyên" in text and "Chậm tiến độ" in text
    assert "21,0" in text  # Vietnamese numbers in the PDF too
