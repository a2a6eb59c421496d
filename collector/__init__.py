"""The central collector: enrolment, ingest, reports and dashboard (xaprobe.collector)."""
