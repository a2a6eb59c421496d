"""Where a commune's month of samples came from: counts per site (and "site unknown"), the share from
residential sites against the commune's minimum, the number of sites heard from, and whether one site gives
more than the concentration limit of the month."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from xaprobe.collector.sites import Site
from xaprobe.slug import slugify

MIN_SAMPLES_TO_WARN = 20  # no concentration warning on the month's first few samples (one site is 100 % of 1)


@dataclasses.dataclass(frozen=True)
class SiteMonth:
    """One site's month in its commune; site_id None is the samples that named no site ("site unknown")."""

    site_id: str | None
    name: str
    kind: str
    hamlet: str
    residential: bool
    lat: float | None
    lon: float | None
    samples: int
    failed: int
    share: float | None  # of the commune's samples this month (None when it has none)
    download_median: float | None = None  # filled where one commune is shown


@dataclasses.dataclass(frozen=True)
class Coverage:
    sites: tuple[SiteMonth, ...] = ()
    site_count: int = 0  # sites that gave at least one sample this month ("site unknown" is not one)
    residential_share: float | None = None  # samples from residential sites / all samples (None: no samples)
    top_site: str | None = None  # the name of the site that gave the most samples
    top_share: float | None = None
    concentrated: bool = False  # top_share above the collector's concentration limit (from MIN_SAMPLES_TO_WARN on)
    min_residential: int | None = None  # the least residential share (%) staff asked of this commune
    residential_short: bool = False  # a minimum is set and the month is below it (with samples)

    @property
    def unknown(self) -> int:
        return sum(s.samples for s in self.sites if s.site_id is None)

    def by_kind(self) -> dict[str, int]:
        """Samples per kind of site (sites with none left out), most first."""
        kinds: dict[str, int] = {}
        for s in self.sites:
            if s.site_id is not None and s.samples:
                kinds[s.kind] = kinds.get(s.kind, 0) + s.samples
        return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def commune_coverage(known: list[Site], counts: dict[str | None, tuple[int, int]], limit_percent: int,
                     min_residential: int | None) -> Coverage:
    """The coverage of one commune from its sites and its (ok, failed) counts per site id."""
    total = sum(ok for ok, _ in counts.values())
    months = [SiteMonth(s.id, s.name, s.kind, s.hamlet, s.residential, s.lat, s.lon, *counts.get(s.id, (0, 0)),
                        _share(counts.get(s.id, (0, 0))[0], total)) for s in known]
    unknown = counts.get(None, (0, 0))
    if unknown != (0, 0):
        months.append(SiteMonth(None, "", "", "", False, None, None, *unknown, _share(unknown[0], total)))
    months.sort(key=lambda m: (-m.samples, m.site_id is None, slugify(m.name, 200)))  # Đ with D, not after Z
    named = [m for m in months if m.site_id is not None and m.samples]
    top = named[0] if named else None
    residential = _share(sum(m.samples for m in months if m.residential), total)
    return Coverage(
        sites=tuple(months), site_count=len(named), residential_share=residential,
        top_site=top.name if top else None, top_share=top.share if top else None,
        concentrated=bool(top and top.share is not None and top.share * 100 > limit_percent
                          and total >= MIN_SAMPLES_TO_WARN),
        min_residential=min_residential,
        residential_short=bool(min_residential and residential is not None and residential * 100 < min_residential))


def coverage_by_commune(known: list[Site], rows: list[Any], limit_percent: int,
                        minimums: dict[str, int]) -> dict[str, Coverage]:
    """Coverage per commune code from every site of the communes and the (commune, site, ok, failed) rows."""
    sites_of: dict[str, list[Site]] = defaultdict(list)
    for site in known:
        sites_of[site.commune_code].append(site)
    counts: dict[str, dict[str | None, tuple[int, int]]] = defaultdict(dict)
    site_ids = {s.id for s in known}
    for commune, site_id, ok, failed in rows:
        key = site_id if site_id in site_ids else None
        before = counts[commune].get(key, (0, 0))
        counts[commune][key] = (before[0] + int(ok or 0), before[1] + int(failed or 0))
    return {code: commune_coverage(sites_of.get(code, []), counts.get(code, {}), limit_percent, minimums.get(code))
            for code in set(sites_of) | set(counts) | set(minimums)}
