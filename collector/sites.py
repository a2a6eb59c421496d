"""The sites of each commune (where probes and field sessions measure), which site each device measures
from, and the least residential share staff set for a commune; a site never moves to another commune."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import sqlalchemy as sa

from xaprobe import sites as kinds
from xaprobe.collector.db import aware
from xaprobe.collector.schema import commune_residential, devices, sites
from xaprobe.errors import UserError
from xaprobe.slug import slugify


class SiteError(UserError):
    """Staff (or a probe) asked for a site that cannot be: an unknown id, a taken one, another commune's."""


@dataclasses.dataclass(frozen=True)
class Site:
    id: str
    commune_code: str
    name: str
    kind: str
    hamlet: str
    lat: float | None
    lon: float | None
    residential: bool
    created_at: dt.datetime
    created_by: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "commune_code": self.commune_code, "name": self.name, "kind": self.kind,
                "hamlet": self.hamlet, "lat": self.lat, "lon": self.lon, "residential": self.residential,
                "created_by": self.created_by}


def _site(row: Any) -> Site:
    return Site(row.id, row.commune_code, row.name, row.kind, row.hamlet or "", row.lat, row.lon,
                bool(row.residential), aware(row.created_at), row.created_by)


def check_coordinates(lat: float | None, lon: float | None) -> None:
    """Both or neither, and inside Vietnam's box (8–24° N, 102–110° E) so a swapped pair is caught."""
    if (lat is None) != (lon is None):
        raise SiteError("lat, lon: give both, or neither")
    if lat is not None and lon is not None and not (8.0 <= lat <= 24.0 and 102.0 <= lon <= 110.0):
        raise SiteError(f"lat, lon: {lat}, {lon} is not in Vietnam (latitude 8–24, longitude 102–110; "
                        "were they swapped?)")


def _unknown(site_id: str) -> SiteError:
    return SiteError(f"no site {site_id!r} (see `xaprobe-collector site list --commune CODE`)")


class SiteStore:
    """Sites, device sites and residential minimums in the collector's database."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def add(self, site: Site) -> Site:
        """Store a new site; SiteError when its id is taken, or its commune has as many as staff may add, or (a site
        a device adds) its device or its commune has as many device-made sites as they may have."""
        if not kinds.is_site_id(site.id):
            raise SiteError(kinds.not_a_site_id(site.id))
        if site.kind not in kinds.KINDS:
            raise SiteError(f"kind {site.kind!r} is not one of {', '.join(kinds.KINDS)}")
        check_coordinates(site.lat, site.lon)
        with self.engine.begin() as conn:
            if conn.execute(sa.select(sites.c.id).where(sites.c.id == site.id)).first():
                raise SiteError(f"a site with id {site.id!r} exists already (choose another --id)")
            staff = sites.c.created_by == "staff"
            made = sa.select(sa.func.count()).select_from(sites).where(sites.c.commune_code == site.commune_code)
            if site.created_by == "staff":
                count = conn.execute(made.where(staff)).scalar_one()
                if count >= kinds.MAX_SITES_PER_COMMUNE:
                    raise SiteError(f"commune {site.commune_code} has {count} sites already, the most one may have")
            else:  # a device's (counted here, in the insert's transaction, so parallel requests cannot pass it)
                by_device = conn.execute(sa.select(sa.func.count()).select_from(sites)
                                         .where(sites.c.created_by == site.created_by)).scalar_one()
                in_commune = conn.execute(made.where(~staff)).scalar_one()
                if by_device >= kinds.FIELD_SITES_PER_DEVICE or in_commune >= kinds.FIELD_SITES_PER_COMMUNE:
                    raise SiteError(f"{site.created_by} has added {by_device} sites and the devices of commune "
                                    f"{site.commune_code} {in_commune}, the most they may "
                                    f"({kinds.FIELD_SITES_PER_DEVICE}, {kinds.FIELD_SITES_PER_COMMUNE}): ask the "
                                    "collector staff (xaprobe-collector site add)")
            try:
                with conn.begin_nested():  # two field sessions adding one place at once: one wins, one is told
                    conn.execute(sites.insert().values(**dataclasses.asdict(site)))
            except sa.exc.IntegrityError:
                raise SiteError(f"a site with id {site.id!r} exists already (choose another --id)") from None
        return site

    def update(self, site_id: str, **changes: Any) -> Site:
        """Change a site's name, kind, hamlet, coordinates or residential flag (its commune never changes)."""
        site = self.get(site_id)
        if site is None:
            raise _unknown(site_id)
        new = dataclasses.replace(site, **{k: v for k, v in changes.items() if v is not None})
        if new.kind not in kinds.KINDS:
            raise SiteError(f"kind {new.kind!r} is not one of {', '.join(kinds.KINDS)}")
        check_coordinates(new.lat, new.lon)
        with self.engine.begin() as conn:
            conn.execute(sites.update().where(sites.c.id == site_id).values(
                name=new.name, kind=new.kind, hamlet=new.hamlet, lat=new.lat, lon=new.lon,
                residential=new.residential))
        return new

    def get(self, site_id: str) -> Site | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(sites).where(sites.c.id == site_id)).first()
        return _site(row) if row else None

    def of_communes(self, commune_codes: list[str] | None = None) -> list[Site]:
        """The sites of these communes (all when None), by commune then name."""
        query = sa.select(sites)
        if commune_codes is not None:
            query = query.where(sites.c.commune_code.in_(commune_codes))
        with self.engine.connect() as conn:
            found = [_site(r) for r in conn.execute(query)]
        # in Python: SQLite and PostgreSQL order Vietnamese names differently (and Đ after Z)
        return sorted(found, key=lambda s: (s.commune_code, slugify(s.name, 200), s.id))

    def assign(self, device_id: str, site_id: str | None) -> None:
        """Say which site the device measures from (None: none, which the probe takes over its agent.toml's);
        the site must be in its commune."""
        with self.engine.begin() as conn:
            commune = conn.execute(sa.select(devices.c.commune_code).where(devices.c.id == device_id)).scalar()
            if commune is None:
                raise SiteError(f"no device {device_id!r} (see `xaprobe-collector device list`)")
            if site_id:
                site_commune = conn.execute(sa.select(sites.c.commune_code).where(sites.c.id == site_id)).scalar()
                if site_commune is None:
                    raise _unknown(site_id)
                if site_commune != commune:
                    raise SiteError(f"site {site_id} is in commune {site_commune}, device {device_id} measures "
                                    f"for {commune}")
            conn.execute(devices.update().where(devices.c.id == device_id).values(site_id=site_id or ""))

    def communes_of(self, site_ids: set[str]) -> dict[str, str]:
        """site id -> its commune, for the ids that are sites."""
        if not site_ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(sites.c.id, sites.c.commune_code).where(sites.c.id.in_(sorted(site_ids))))
            return {r[0]: r[1] for r in rows}

    def set_min_residential(self, commune_code: str, percent: int | None) -> None:
        """Set (or with None, clear) the least share (%) of a commune's samples that must be residential."""
        with self.engine.begin() as conn:
            conn.execute(commune_residential.delete().where(commune_residential.c.commune_code == commune_code))
            if percent is not None:
                conn.execute(commune_residential.insert().values(commune_code=commune_code, min_percent=percent))

    def min_residential(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(sa.select(commune_residential))}
