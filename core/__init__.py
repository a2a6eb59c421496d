"""xaprobe: automatic mobile-broadband speed probes for Vietnam's communes."""

__version__ = "0.1.0"
