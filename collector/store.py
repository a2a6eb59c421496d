"""The collector's database as its users see it: one engine, and one store per thing it serves
(`devices`: which probes may talk to it; `enrolment`: their one-time codes; `admins`: which staff;
`samples`: ingest; `sites`: where in each commune they measure; `stats`: the figures reports are made of;
`alerts`: which alerts went out today)."""

from __future__ import annotations

import sqlalchemy as sa

from xaprobe.collector.admins import AdminStore
from xaprobe.collector.alertlog import AlertLog
from xaprobe.collector.devices import DeviceStore
from xaprobe.collector.enrolment import EnrolmentStore
from xaprobe.collector.samples import SampleStore
from xaprobe.collector.sites import SiteStore
from xaprobe.collector.stats import StatsStore


class CollectorStore:
    """Devices, admins, measurements and statistics over one engine (from db.open_engine)."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.devices = DeviceStore(engine)
        self.enrolment = EnrolmentStore(engine)
        self.admins = AdminStore(engine)
        self.samples = SampleStore(engine)
        self.stats = StatsStore(engine)
        self.alerts = AlertLog(engine)
        self.sites = SiteStore(engine)

    def ping(self) -> None:
        """Raise if the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
