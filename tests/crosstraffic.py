"""Cross traffic for the quiet-check tests, run inside a NetLab namespace: `python crosstraffic.py MODE ...`.

serve PORT             in the server namespace: a client that sends b"D" gets zeros until it leaves; one
                       that sends b"U" has everything it sends read and dropped
download HOST PORT S   a user's download for S seconds
leave HOST PORT BYTES  the leftovers of a test: queue BYTES of upload in the socket, close it and exit at once
                       (the kernel keeps sending them in FIN-WAIT-1, as speedtest-cli's sockets do)
look IFACE WINDOW      print {"kbps": ..., "elapsed_s": ...} from one look of the quiet check
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

SO_SNDBUFFORCE = 32  # root may exceed net.core.wmem_max


def _serve_one(conn: socket.socket) -> None:
    try:
        if conn.recv(1) == b"D":
            block = bytes(65536)
            while True:
                conn.sendall(block)
        while conn.recv(65536):
            pass
    except OSError:
        pass
    finally:
        conn.close()


def serve(port: int) -> None:
    server = socket.create_server(("0.0.0.0", port))
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_serve_one, args=(conn,), daemon=True).start()


def download(host: str, port: int, seconds: float) -> None:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"D")
        end = time.monotonic() + seconds
        while time.monotonic() < end and s.recv(65536):
            pass


def leave(host: str, port: int, size: int) -> None:
    s = socket.create_connection((host, port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 2 * size)  # the kernel counts about twice the payload
    s.sendall(b"U")
    s.setblocking(False)
    queued, block = 0, bytes(65536)
    while queued < size:
        try:
            queued += s.send(block)
        except BlockingIOError:
            break
    s.close()  # no linger: the kernel drains the queue after we are gone
    print(json.dumps({"queued": queued}))


def look(interface: str, window_s: float) -> None:
    from xaprobe.agent.quiet import Counters

    start = time.monotonic()
    kbps = Counters().kbps(interface, window_s)
    print(json.dumps({"kbps": kbps, "elapsed_s": time.monotonic() - start}))


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "serve":
        serve(int(args[0]))
    elif mode == "download":
        download(args[0], int(args[1]), float(args[2]))
    elif mode == "leave":
        leave(args[0], int(args[1]), int(args[2]))
    elif mode == "look":
        look(args[0], float(args[1]))
