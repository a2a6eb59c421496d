"""Run one test on one link: gather its context, run the engine, stamp device fields, store it."""

from __future__ import annotations

import dataclasses
import socket

from xaprobe import __version__
from xaprobe.agent import context
from xaprobe.agent.config import AgentConfig, LinkConfig, site_of
from xaprobe.agent.engines import run_engine
from xaprobe.agent.engines.base import RunRequest
from xaprobe.agent.quiet import NOT_CHECKED, Quiet, stamped
from xaprobe.agent.store import Store
from xaprobe.months import utc_now
from xaprobe.plausibility import checked
from xaprobe.wire import Link, Location, Measurement, new_id


def _interface_exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def link_context(link: LinkConfig) -> Link:
    """Describe the link as the wire format does, reading sysfs and ModemManager where they answer."""
    access = context.access_type(link.interface) if link.access == "auto" else link.access
    radio = context.cellular_radio(link.interface) if access == "cellular" else \
        context.wifi_radio(link.interface) if access == "wifi" else None
    operator = link.operator or (radio.operator if radio and radio.operator else "")
    return Link(name=link.name, interface=link.interface, access=access, operator=operator, radio=radio)


def measure(config: AgentConfig, store: Store, link: LinkConfig, engine: str | None = None,
            server: str | None = None, location: Location | None = None, cap_bytes: int = 0,
            bind: bool = True, site_id: str | None = None, quiet: Quiet = NOT_CHECKED) -> Measurement:
    """Run one test on the link and store it (failed tests too, and ok ones only when their figures agree),
    stamped with its site (site_id, else the probe's own) and what the quiet check just before it saw; return the
    stored Measurement. A programming error in the engine is raised, nothing stored."""
    engine = engine or config.engine
    described = link_context(link)
    interface = link.interface if bind and link.interface and _interface_exists(link.interface) else ""
    request = RunRequest(link=described, bind_interface=interface, source_address=link.source_address,
                          cap_bytes=cap_bytes)
    if bind and link.interface and not interface:
        result = Measurement(id=new_id(), started_at=utc_now(), engine=engine, status="failed",
                             link=described, agent_version=__version__,
                             error=f"interface {link.interface} does not exist "
                                   "(is the modem plugged in? check links[].interface)")
    else:
        # an ok whose figures disagree (a server that lies, an engine's bug) is stored failed, figures kept
        result = checked(run_engine(engine, request, config.engine_settings(engine), server))
    result = dataclasses.replace(stamped(result, quiet), device_id=config.device_id,
                                 commune_code=config.commune_code, clock_synced=context.clock_synced(),
                                 location=location, site_id=site_id or site_of(config, store.centre_settings()))
    return store.add(result)
