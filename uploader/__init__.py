"""Store-and-forward delivery of the probe's measurements to the collector (xaprobe.uploader)."""
