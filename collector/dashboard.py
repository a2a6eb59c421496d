"""Server-rendered dashboard pages (Vietnamese by default, ?lang=en), CSV/XLSX exports, and the sign-in
form that POSTs an admin token for a server-side session (no token ever in a URL, a log or a history)."""

from __future__ import annotations

import calendar
import dataclasses
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from xaprobe import communes
from xaprobe.collector import charts
from xaprobe.collector.admins import SESSION_MAX
from xaprobe.collector.coverage import SiteMonth
from xaprobe.collector.deps import ADMIN_COOKIE, Services, admin_auth, services
from xaprobe.collector.exports import render_raw, render_report, title_block
from xaprobe.collector.fleet import fleet
from xaprobe.collector.formats import Formats, parse_month_input
from xaprobe.collector.i18n import labels, language
from xaprobe.collector.pdf import NoFont, report_pdf
from xaprobe.collector.reports import STATUSES, Spread, monthly_report
from xaprobe.collector.sitemap import site_map
from xaprobe.collector.views import CommuneFilter, advice, commune_history, fleet_counts, select_communes
from xaprobe.months import month_of, parse_month
from xaprobe.sites import kind_label

router = APIRouter(include_in_schema=False)
_templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(["html"]))
# the one stylesheet, read once: the Content-Security-Policy allows styles from this site only, not inline
_STYLESHEET = (Path(__file__).parent / "static" / "xaprobe.css").read_bytes()
_MEDIA = {"csv": "text/csv; charset=utf-8",
          "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _admin(request: Request) -> str | None:
    try:
        return admin_auth(request)
    except HTTPException:
        return None


class BadInput(Exception):
    """What a person typed in the address or a form that the page cannot use: answered with a page in
    the page's language saying what to type instead (never a JSON error)."""

    def __init__(self, lang: str, message: str, value: str = "", status: int = 400):
        super().__init__(message)
        self.lang, self.message, self.value, self.status = lang, message, value, status


def _formats(request: Request, lang: str) -> Formats:
    return Formats(lang, services(request).settings.timezone)


def _page(name: str, request: Request, lang: str, **context: Any) -> HTMLResponse:
    html = _templates.get_template(name).render(t=labels(lang), f=_formats(request, lang), lang=lang,
                                                path=request.url.path, query=request.url.query, **context)
    return HTMLResponse(html)


def bad_input_page(request: Request, exc: Exception) -> Response:
    """The exception handler for BadInput (registered by create_app)."""
    assert isinstance(exc, BadInput)
    t = labels(exc.lang)
    response = _page("error.html", request, exc.lang, message=t[exc.message].format(value=exc.value[:60]),
                     admin=None)
    response.status_code = exc.status
    return response


def _login_redirect(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here)}", 303)


def _local(target: str) -> str:
    """Only a path on this site: no //host, no scheme, no backslash tricks."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


@router.get("/static/xaprobe.css")
def stylesheet() -> Response:
    return Response(_STYLESHEET, media_type="text/css; charset=utf-8", headers={"Cache-Control": "max-age=3600"})


@router.get("/login")
def login_form(request: Request, next: str = "/", lang: Literal["vi", "en"] = "vi") -> Response:
    return _page("login.html", request, lang, next=_local(next), error=False)


@router.post("/login")
def login_post(request: Request, token: str = Form(..., max_length=200), next: str = Form("/", max_length=2000),
               lang: Literal["vi", "en"] = "vi") -> Response:
    s = services(request)
    session = s.store.admins.open_session(token, s.clock())
    if session is None:
        response = _page("login.html", request, lang, next=_local(next), error=True)
        response.status_code = 401
        return response
    redirect = RedirectResponse(_local(next), 303)
    # Secure whenever the browser reached us over HTTPS, directly or through a proxy uvicorn trusts
    # (proxy_headers: X-Forwarded-Proto from forwarded_allow_ips sets the scheme)
    redirect.set_cookie(ADMIN_COOKIE, session, max_age=int(SESSION_MAX.total_seconds()), path="/",
                        httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return redirect


@router.post("/logout")
def logout(request: Request) -> Response:
    session = request.cookies.get(ADMIN_COOKIE)
    if session:
        services(request).store.admins.end_session(session)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(ADMIN_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response


def _month(s: Services, month: str | None, lang: str) -> str:
    """The month asked for (2026-11, 11/2026, ...) as YYYY-MM; this month when none was given."""
    if not month or not month.strip():
        return month_of(s.clock(), s.settings.timezone)
    try:
        return parse_month_input(month)
    except ValueError:
        raise BadInput(lang, "bad_month", month) from None


def _province(s: Services, province: str | None, lang: str) -> str:
    """The province code asked for; the configured one when none."""
    if not province:
        return s.settings.province
    if not province.strip().isdigit() or communes.province_name(province) is None:
        raise BadInput(lang, "bad_province", province, 404)
    return communes.normalise_code(province)


def _lang(lang: str | None) -> str:
    return language(lang)


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, month: str | None = None, province: str | None = None, sort: str = "status",
             status: str | None = None, operator: str | None = None, q: str | None = None,
             lang: str = "vi") -> Response:
    lang = _lang(lang)
    if (admin := _admin(request)) is None:
        return _login_redirect(request)
    state = services(request)
    month = _month(state, month, lang)
    report = monthly_report(state.store, state.settings, month, _province(state, province, lang), state.clock())
    wanted = CommuneFilter.of(status, operator, q, sort)
    rows = select_communes(report, wanted)
    f = _formats(request, lang)
    t = labels(lang)
    chart = charts.operator_bars(t["operators_chart"], {op: o.download_mbps.median
                                                       for op, o in report.operators.items()}, "Mbit/s", f,
                                 (t["threshold_bar"], report.threshold_mbps)) if report.operators else ""
    devices = fleet(state.store, state.clock(), report.province)
    operators = sorted({op for c in report.communes for op in c.operators})
    return _page("overview.html", request, lang, report=report, rows=rows, chart=chart, counts=report.counts(),
                 fleet_counts=fleet_counts(devices), provinces=communes.provinces(), wanted=wanted,
                 operators=operators, statuses=STATUSES, samples=sum(c.samples for c in report.communes),
                 needed=sum(c.target for c in report.communes), admin=admin)


@router.get("/fleet", response_class=HTMLResponse)
def fleet_page(request: Request, province: str | None = None, lang: str = "vi") -> Response:
    lang = _lang(lang)
    if (admin := _admin(request)) is None:
        return _login_redirect(request)
    state = services(request)
    code = _province(state, province, lang)
    devices = fleet(state.store, state.clock(), code)
    order = {"stale": 0, "silent": 1, "ok": 2, "revoked": 3}
    devices.sort(key=lambda d: (order[d.status], not advice(d), d.commune_name, d.id))  # trouble first
    return _page("fleet.html", request, lang, devices=[(d, advice(d)) for d in devices], counts=fleet_counts(devices),
                 province=code, province_name=communes.province_name(code), provinces=communes.provinces(),
                 admin=admin)


@router.get("/commune/{code}", response_class=HTMLResponse)
def commune_page(request: Request, code: str, month: str | None = None, lang: str = "vi") -> Response:
    lang = _lang(lang)
    if (admin := _admin(request)) is None:
        return _login_redirect(request)
    unit = communes.commune(code)
    if unit is None:
        raise BadInput(lang, "no_commune", code, 404)
    state = services(request)
    month = _month(state, month, lang)
    report = monthly_report(state.store, state.settings, month, unit.province_code, state.clock(),
                            only_commune=unit.code)
    row = report.communes[0]
    f, t = _formats(request, lang), labels(lang)
    history = commune_history(state.store, state.settings, unit.code, unit.province_code, month, state.clock())
    devices = [h for h in fleet(state.store, state.clock(), unit.province_code) if h.commune_code == unit.code]
    rows = state.store.stats.month_rows(month, commune_codes=[row.code])
    sites = _site_medians(row.coverage.sites, rows)
    charts = _commune_charts(state, t, f, rows, month, row)
    return _page("commune.html", request, lang, report=report, c=row, charts=charts, history=history,
                 history_charts=_history_charts(t, f, history), devices=devices, admin=admin, sites=sites,
                 site_map=site_map(sites, t["sites_map"], t["residential"], f, t["sites_far"]),
                 site_names={s.site_id: s.name for s in sites}, kind_label=lambda k: kind_label(k, lang))


def _site_medians(sites: tuple[SiteMonth, ...], rows: list[Any]) -> list[SiteMonth]:
    """The commune's sites with the median download of each one's samples this month."""
    downloads: dict[str | None, list[float]] = defaultdict(list)
    known = {s.site_id for s in sites}
    for r in rows:
        if r.status == "ok" and r.download_mbps is not None:
            downloads[r.site_id if r.site_id in known else None].append(r.download_mbps)
    return [dataclasses.replace(s, download_median=Spread.of(downloads[s.site_id]).median) for s in sites]


def _commune_charts(state: Services, t: dict[str, str], f: Formats, rows: list[Any], month: str,
                    row: Any) -> dict[str, str]:
    """The commune's month in pictures: samples per day, the operators' medians, their spread."""
    per_day: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    downloads: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.status == "ok":
            per_day[r.operator][f.local(r.started_at).day] += 1
            if r.download_mbps is not None:
                downloads[r.operator].append(r.download_mbps)
    year, mon = parse_month(month)
    days = list(range(1, calendar.monthrange(year, mon)[1] + 1))
    out = {}
    if per_day:
        out["daily"] = charts.daily_samples(t["per_day"], days, {op: [d.get(day, 0) for day in days]
                                                                for op, d in sorted(per_day.items())}, f)
    if row.operators:
        out["operator"] = charts.operator_bars(t["operators_chart"], {op: o.download_mbps.median
                                                                     for op, o in row.operators.items()}, "Mbit/s", f,
                                               (t["threshold_bar"], state.settings.threshold_mbps))
    if downloads:
        out["spread"] = charts.operator_spread(t["spread_chart"], dict(sorted(downloads.items())), f)
    return out


def _history_charts(t: dict[str, str], f: Formats, history: list[Any]) -> dict[str, str]:
    """Samples and median download per operator over the last months (none when no month has data)."""
    operators = sorted({op for _, c in history for op in c.operators})
    if not operators:
        return {}
    months = [m for m, _ in history]
    samples = {op: [c.operators[op].samples if op in c.operators else None for _, c in history] for op in operators}
    medians = {op: [c.operators[op].download_mbps.median if op in c.operators else None for _, c in history]
               for op in operators}
    return {"samples": charts.history(t["history_samples"], months, samples, f, integers=True),
            "download": charts.history(t["history_download"], months, medians, f)}


@router.get("/report", response_class=HTMLResponse)
def print_view(request: Request, month: str | None = None, province: str | None = None, lang: str = "vi") -> Response:
    """The province's monthly report as one print-ready page (the browser's Print, with the print stylesheet)."""
    lang = _lang(lang)
    if (admin := _admin(request)) is None:
        return _login_redirect(request)
    state = services(request)
    report = monthly_report(state.store, state.settings, _month(state, month, lang),
                            _province(state, province, lang), state.clock())
    f, t = _formats(request, lang), labels(lang)
    chart = charts.operator_bars(t["operators_chart"], {op: o.download_mbps.median
                                                       for op, o in report.operators.items()}, "Mbit/s", f,
                                 (t["threshold_bar"], report.threshold_mbps)) if report.operators else ""
    return _page("print.html", request, lang, report=report, rows=select_communes(report, CommuneFilter()),
                 lines=title_block(report, lang, state.clock(), state.settings.timezone), counts=report.counts(),
                 samples=sum(c.samples for c in report.communes), needed=sum(c.target for c in report.communes),
                 chart=chart, admin=admin)


@router.get("/report.pdf")
def report_pdf_download(request: Request, month: str | None = None, province: str | None = None,
                        lang: str = "vi") -> Response:
    lang = _lang(lang)
    if _admin(request) is None:
        return _login_redirect(request)
    state = services(request)
    month = _month(state, month, lang)
    report = monthly_report(state.store, state.settings, month, _province(state, province, lang), state.clock())
    try:
        data = report_pdf(report, lang, state.clock(), state.settings.timezone)
    except NoFont:
        raise BadInput(lang, "no_font", "", 503) from None
    name = f"xaprobe-{report.province}-{month}.pdf"
    return Response(data, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/export/report.{fmt}")
def export_report(request: Request, fmt: Literal["csv", "xlsx"], month: str | None = None,
                  province: str | None = None, lang: str = "vi") -> Response:
    lang = _lang(lang)
    if _admin(request) is None:
        raise HTTPException(401, "admin token required")
    state = services(request)
    month = _month(state, month, lang)
    report = monthly_report(state.store, state.settings, month, _province(state, province, lang), state.clock())
    name = f"xaprobe-{report.province}-{month}.{fmt}"
    return Response(render_report(report, fmt, lang, state.clock(), state.settings.timezone), media_type=_MEDIA[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/export/raw.{fmt}")
def export_raw(request: Request, fmt: Literal["csv", "xlsx"], month: str | None = None, commune: str | None = None,
               province: str | None = None, lang: str = "vi") -> Response:
    lang = _lang(lang)
    if _admin(request) is None:
        raise HTTPException(401, "admin token required")
    state = services(request)
    month = _month(state, month, lang)
    code = None
    if commune:
        if (unit := communes.commune(commune)) is None:
            raise BadInput(lang, "no_commune", commune, 404)
        code = unit.code
    where = None if code else _province(state, province, lang)
    rows = state.store.stats.raw_rows(month, code, where)
    name = f"xaprobe-samples-{code or where}-{month}.{fmt}"
    shown = _formats(request, lang).short_month(month).replace("/", "-")
    return Response(render_raw(rows, fmt, shown, lang, state.settings.timezone), media_type=_MEDIA[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
