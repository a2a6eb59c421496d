"""`xaprobe demo`: a real collector, real measurements, a real upload, the commune's month printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_demo_end_to_end(tmp_path):
    done = subprocess.run([sys.executable, "-m", "xaprobe.agent", "demo", "--measurements", "3", "--duration", "1",
                           "--json"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "XAPROBE_LANG": "en"})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    commune = out["commune"]
    assert commune["code"] == "18673" and commune["name"] == "Xã Cẩm Xuyên"
    assert (commune["samples"], commune["failed"], commune["target"]) == (3, 0, 300)
    assert commune["operators"]["Demo"]["download_mbps"]["median"] > 0
    assert out["sign_in"].startswith("http://127.0.0.1:") and out["sign_in"].endswith("/login?next=/commune/18673")
    assert out["admin_token"].startswith("xap_") and out["admin_token"] not in out["sign_in"]
    assert "uploaded: 3 accepted" in done.stderr
