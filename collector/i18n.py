"""Dashboard and export labels in Vietnamese (the default) and English."""

from __future__ import annotations

LANGUAGES = ("vi", "en")

_LABELS = {
    "title": ("Chất lượng băng rộng di động theo xã", "Mobile broadband quality by commune"),
    "province": ("Tỉnh/thành phố", "Province"),
    "month": ("Tháng", "Month"),
    "commune": ("Xã/phường", "Commune"),
    "code": ("Mã", "Code"),
    "samples": ("Mẫu đạt", "Samples"),
    "failed": ("Đo lỗi", "Failed"),
    "target": ("Chỉ tiêu", "Target"),
    "percent": ("% chỉ tiêu", "% of target"),
    "projected": ("Dự kiến cuối tháng", "Projected"),
    "status": ("Trạng thái", "Status"),
    "operator": ("Nhà mạng", "Operator"),
    "download": ("Tải xuống (Mbit/s)", "Download (Mbit/s)"),
    "upload": ("Tải lên (Mbit/s)", "Upload (Mbit/s)"),
    "latency": ("Độ trễ (ms)", "Latency (ms)"),
    "median": ("trung vị", "median"),
    "p10": ("P10", "P10"),
    "p90": ("P90", "P90"),
    "share_above": ("Tỷ lệ ≥ ngưỡng", "Share ≥ threshold"),
    "on_track": ("Đúng tiến độ", "On track"),
    "behind": ("Chậm tiến độ", "Behind"),
    "no_data": ("Chưa có dữ liệu", "No data"),
    "devices": ("Thiết bị đo", "Probes"),
    "device": ("Thiết bị", "Probe"),
    "last_seen": ("Lần cuối liên lạc", "Last seen"),
    "backlog": ("Chờ gửi", "Backlog"),
    "never": ("chưa bao giờ", "never"),
    "per_day": ("Số mẫu mỗi ngày", "Samples per day"),
    "operators_chart": ("So sánh nhà mạng: tốc độ tải xuống trung vị", "Operators: median download"),
    "export_csv": ("Tải CSV", "Download CSV"),
    "export_xlsx": ("Tải Excel", "Download Excel"),
    "raw_csv": ("Dữ liệu gốc (CSV)", "Raw samples (CSV)"),
    "raw_xlsx": ("Dữ liệu gốc (Excel)", "Raw samples (Excel)"),
    "login": ("Đăng nhập", "Sign in"),
    "token": ("Mã truy cập quản trị", "Admin token"),
    "bad_token": ("Mã truy cập không đúng", "That token is not valid"),
    "back": ("Quay lại", "Back"),
    "threshold": ("Ngưỡng tải xuống", "Download threshold"),
    "ok": ("Bình thường", "OK"),
    "silent": ("Mất liên lạc > 2 giờ", "Silent > 2 h"),
    "stale": ("Mất liên lạc > 1 ngày", "Stale > 1 day"),
    "revoked": ("Đã thu hồi", "Revoked"),
    "last_sample": ("Mẫu gần nhất", "Last sample"),
    "clock": ("Đồng hồ", "Clock"),
    "clock_ok": ("đã đồng bộ", "synchronised"),
    "clock_bad": ("CHƯA đồng bộ", "NOT synchronised"),
    "version": ("Phiên bản", "Version"),
    "budget": ("Dữ liệu đã dùng", "Data used"),
    "logout": ("Đăng xuất", "Sign out"),
    "id_conflicts": ("mã mẫu trùng, nội dung khác", "ids reused for other content"),
    "fleet": ("Tình trạng thiết bị đo", "Fleet health"),
    "spread_chart": ("Phân bố tốc độ tải xuống theo nhà mạng (Mbit/s)", "Download spread by operator (Mbit/s)"),
    "disk_full": ("đầy bộ nhớ", "disk full"),
    "ok_button": ("Xem", "Show"),
    "month_hint": ("vd. 11/2026", "e.g. 11/2026"),
    "error_title": ("Không mở được trang", "This page cannot be shown"),
    "bad_month": ("Tháng «{value}» không hợp lệ. Hãy nhập tháng dạng 11/2026 (hoặc 2026-11).",
                  "“{value}” is not a month. Type it as 11/2026 (or 2026-11)."),
    "bad_province": ("Không có tỉnh/thành phố nào mã «{value}». Hãy chọn tỉnh trong danh sách.",
                     "There is no province with code “{value}”. Choose one from the list."),
    "no_commune": ("Không có xã/phường nào mã «{value}» trong danh mục hành chính.",
                   "There is no commune with code “{value}” in the list of administrative units."),
    "back_home": ("Về trang tổng hợp", "Back to the overview"),
}


def language(requested: str | None) -> str:
    """The page's language: English when asked for, else Vietnamese (whatever else the address says)."""
    return "en" if requested == "en" else "vi"


def labels(language: str) -> dict[str, str]:
    """Return every label in the language ('vi' or 'en'; anything else gives Vietnamese)."""
    index = 1 if language == "en" else 0
    return {key: pair[index] for key, pair in _LABELS.items()}
