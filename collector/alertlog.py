"""Which alert items went out on which local day: the record that keeps each to once a day, in the database
(several collector processes, or a timer and a person running the command, share it)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from xaprobe.collector.schema import alerts_sent


class AlertLog:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def sent_on(self, day: str, items: list[str]) -> set[str]:
        """Those of items already sent on day (YYYY-MM-DD, local)."""
        if not items:
            return set()
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(sa.select(alerts_sent.c.item).where(
                (alerts_sent.c.day == day) & alerts_sent.c.item.in_(items)))}

    def mark_sent(self, day: str, items: list[str], now: dt.datetime) -> None:
        """Record items as sent on day; one already recorded (another process sent it meanwhile) stays as it was."""
        with self.engine.begin() as conn:
            known = {r[0] for r in conn.execute(sa.select(alerts_sent.c.item).where(
                (alerts_sent.c.day == day) & alerts_sent.c.item.in_(items)))}
            fresh = [{"day": day, "item": item, "sent_at": now} for item in items if item not in known]
            if fresh:
                conn.execute(alerts_sent.insert(), fresh)
            # keep a few weeks: the record only has to cover today
            conn.execute(alerts_sent.delete().where(alerts_sent.c.day < (dt.date.fromisoformat(day)
                                                                         - dt.timedelta(days=40)).isoformat()))
