"""What one speedtest-cli run may ask and read: the public configuration's values, bounds on a configuration
fetched from speedtest.net, the cuts that keep a byte cap, and the most bytes each request may read."""

from __future__ import annotations

import math
import re
from urllib.parse import urlsplit

from xaprobe.agent.engines.limits import HEAD_ROOM, SMALL_ANSWER

# Ookla's random{N}x{N}.jpg sizes in bytes, to plan a byte cap before the test
DOWNLOAD_BYTES = {350: 245388, 500: 505544, 750: 1118012, 1000: 1986284, 1500: 4468241, 2000: 7907740,
                  2500: 12407926, 3000: 17816816, 3500: 24262167, 4000: 31625365}
UPLOAD_SIZES = [32768, 65536, 131072, 262144, 524288, 1048576, 7340032]
LIST_ANSWER = 1 << 20  # speedtest.net's configuration and server lists: tens of KiB in practice
_RANDOM_FILE = re.compile(r"/random(\d+)x\1\.jpg$")
# what speedtest.net's configuration may ask at most: its public values are 10 s, 8 threads, 4 per URL, 50 uploads
MAX_LENGTH_S, MAX_THREADS, MAX_PER_URL, MAX_UPLOADS = 15, 16, 8, 100


def public_config(ratio: int = 5, max_chunks: int = 50) -> dict:
    """The values speedtest.net's public configuration gives, as speedtest-cli keeps them."""
    sizes_up = UPLOAD_SIZES[ratio - 1:]
    count_up = math.ceil(max_chunks / len(sizes_up))
    return {
        "client": {"ip": "", "isp": "", "lat": "0", "lon": "0", "country": ""},
        "ignore_servers": [],
        "sizes": {"upload": sizes_up, "download": list(DOWNLOAD_BYTES)},
        "counts": {"upload": count_up, "download": 4},
        "threads": {"upload": 2, "download": 8},
        "length": {"upload": 10, "download": 10},
        "upload_max": count_up * len(sizes_up),
    }


def sane_config(config: dict) -> dict:
    """Bound what a configuration fetched from the network may ask: test lengths, threads, counts."""
    config = {**config, "counts": dict(config["counts"]), "threads": dict(config["threads"]),
              "length": dict(config["length"])}
    for way in ("upload", "download"):
        config["length"][way] = max(1, min(int(config["length"][way]), MAX_LENGTH_S))
        config["threads"][way] = max(1, min(int(config["threads"][way]), MAX_THREADS))
    config["counts"]["download"] = max(1, min(int(config["counts"]["download"]), MAX_PER_URL))
    config["counts"]["upload"] = max(1, min(int(config["counts"]["upload"]), MAX_UPLOADS))
    config["upload_max"] = max(1, min(int(config["upload_max"]), MAX_UPLOADS))
    return config


def cap_config(config: dict, cap: int) -> dict:
    """Cut download sizes and counts and the upload request count so each direction stays under cap."""
    if not cap:
        return config
    config = {**config, "sizes": dict(config["sizes"]), "counts": dict(config["counts"])}
    sizes = config["sizes"]["download"]
    count = config["counts"]["download"]
    while count > 1 and count * DOWNLOAD_BYTES[sizes[0]] > cap:
        count -= 1
    kept: list[int] = []
    for size in sizes:
        if count * (sum(DOWNLOAD_BYTES[s] for s in kept) + DOWNLOAD_BYTES[size]) > cap:
            break
        kept.append(size)
    config["sizes"]["download"] = kept or sizes[:1]
    config["counts"]["download"] = count
    order = [size for size in config["sizes"]["upload"] for _ in range(config["counts"]["upload"])]
    total, requests = 0, 0
    for size in order[: config["upload_max"]]:
        if total + size > cap:
            break
        total, requests = total + size, requests + 1
    config["upload_max"] = max(requests, 1)
    return config


def answer_limit(method: str, url: str) -> tuple[int, str]:
    """The most bytes (headers included) speedtest-cli may read for one request, and what it is."""
    path = urlsplit(url).path
    found = _RANDOM_FILE.search(path)
    if found:
        return DOWNLOAD_BYTES.get(int(found.group(1)), 0) + HEAD_ROOM, path.rsplit("/", 1)[-1]
    if method == "POST" or path.endswith(("latency.txt", ".jpg")):
        return SMALL_ANSWER, path.rsplit("/", 1)[-1]
    return LIST_ANSWER, path.rsplit("/", 1)[-1] or "/"
