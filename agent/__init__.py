"""The probe: plans, runs and stores speed tests (xaprobe.agent)."""
