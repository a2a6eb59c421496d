"""A commune's sites on a small map drawn here, with no tile server: an SVG scatter over the extent of the
sites' coordinates (equirectangular, true to scale at the commune's latitude), each site a dot sized by its
samples this month, green when residential, with its name and a scale bar; placed as a data: image like the
charts, so the page fetches nothing and runs no script."""

from __future__ import annotations

import base64
import math
from xml.sax.saxutils import escape

from xaprobe.collector.coverage import SiteMonth
from xaprobe.collector.formats import Formats

WIDTH, HEIGHT, PAD = 600, 420, 70
RESIDENTIAL, OTHER = "#2a9d3a", "#1f6fb2"
KM_PER_DEGREE = 111.32
MIN_SPAN_KM = 1.0  # one site, or sites a few metres apart, still get a map a kilometre across
FAR_KM = 30.0  # a site this far from the others' median is left off (a wrong coordinate would shrink the rest)


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Equirectangular distance: exact enough within a province."""
    x = (lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    return KM_PER_DEGREE * math.hypot(x, lat2 - lat1)


def placed_sites(sites: list[SiteMonth]) -> tuple[list[SiteMonth], int]:
    """The sites drawn and how many were left off as far: those with coordinates within FAR_KM of the site that
    has the most others within FAR_KM (the most samples breaking a tie), so one wrong coordinate stays alone."""
    known = [(s, s.lat, s.lon) for s in sites if s.lat is not None and s.lon is not None]
    if not known:
        return [], 0

    def near(lat: float, lon: float) -> list[SiteMonth]:
        return [s for s, la, lo in known if _distance_km(lat, lon, la, lo) <= FAR_KM]

    _, lat, lon = max(known, key=lambda k: (len(near(k[1], k[2])), k[0].samples))
    drawn = near(lat, lon)
    return drawn, len(known) - len(drawn)


def _nice_km(span_km: float) -> float:
    """A round length for the scale bar, about a fifth of the map's width."""
    raw = span_km / 5
    step = 10 ** math.floor(math.log10(raw))
    return next(m * step for m in (1, 2, 5, 10) if m * step >= raw)


def site_map(sites: list[SiteMonth], title: str, unit_label: str, f: Formats, far_label: str = "") -> str:
    """The <img> of the map of the sites with coordinates; "" when none has any. far_label ({n}) says how many
    sites were left off as too far from the others."""
    placed, far = placed_sites(sites)
    if not placed:
        return ""
    lats = [s.lat for s in placed if s.lat is not None]
    lons = [s.lon for s in placed if s.lon is not None]
    mid_lat = (min(lats) + max(lats)) / 2
    x_km = KM_PER_DEGREE * math.cos(math.radians(mid_lat))
    span_x = max((max(lons) - min(lons)) * x_km, MIN_SPAN_KM)
    span_y = max((max(lats) - min(lats)) * KM_PER_DEGREE, MIN_SPAN_KM)
    scale = min((WIDTH - 2 * PAD) / span_x, (HEIGHT - 2 * PAD - 30) / span_y)  # px per km, same both ways
    centre_lon, centre_lat = (min(lons) + max(lons)) / 2, mid_lat

    def point(site: SiteMonth) -> tuple[float, float]:
        assert site.lat is not None and site.lon is not None
        return (WIDTH / 2 + (site.lon - centre_lon) * x_km * scale,
                (HEIGHT - 30) / 2 - (site.lat - centre_lat) * KM_PER_DEGREE * scale + 15)

    most = max((s.samples for s in placed), default=0) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#f7f9fb" stroke="#c9d1d9"/>',
             f'<text x="12" y="26" font-size="18" fill="#222">{escape(title)}</text>']
    for site in sorted(placed, key=lambda s: -s.samples):  # small dots drawn last stay visible
        x, y = point(site)
        r = 6 + 16 * math.sqrt(site.samples / most)
        colour = RESIDENTIAL if site.residential else OTHER
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{colour}" fill-opacity="0.75" '
                     f'stroke="#fff" stroke-width="1.5"/>')
        label = f"{site.name} ({f.integer(site.samples)})"
        anchor = "end" if x > WIDTH - 200 else "start"
        dx = -(r + 4) if anchor == "end" else r + 4
        parts.append(f'<text x="{x + dx:.1f}" y="{y + 5:.1f}" font-size="14" fill="#222" text-anchor="{anchor}">'
                     f'{escape(label[:60])}</text>')
    bar_km = _nice_km(WIDTH / scale)  # about a fifth of the map's width, whatever the sites' spread
    bar_px = bar_km * scale
    y = HEIGHT - 22
    parts += [f'<line x1="14" y1="{y}" x2="{14 + bar_px:.1f}" y2="{y}" stroke="#222" stroke-width="3"/>',
              f'<text x="{20 + bar_px:.1f}" y="{y + 5}" font-size="13" fill="#222">'
              f'{escape(f.number(bar_km, 0 if bar_km >= 1 else 1))} km</text>',
              f'<circle cx="{WIDTH - 250}" cy="{y}" r="6" fill="{RESIDENTIAL}"/>',
              f'<text x="{WIDTH - 240}" y="{y + 5}" font-size="13" fill="#222">{escape(unit_label)}</text>']
    if far and far_label:
        parts.append(f'<text x="12" y="46" font-size="13" fill="#8a1c1c">{escape(far_label.format(n=far))}</text>')
    parts.append("</svg>")
    svg = "".join(parts).encode("utf-8")
    return (f'<img alt="{escape(title, {chr(34): "&quot;"})}" width="{WIDTH}" height="{HEIGHT}" '
            f'src="data:image/svg+xml;base64,{base64.b64encode(svg).decode("ascii")}">')
