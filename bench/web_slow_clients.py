#!/usr/bin/env python3
"""How long a normal request to `upframe serve` takes while clients trickle header lines.

Starts `upframe serve --port 0` on an empty temporary folder (jobs kept in a temporary state
folder), then for each count of slow clients (default 0 and 60): opens that many connections
that send a request line and then one header line every 0.5 s without ever ending the head,
and times normal `GET /api/jobs` requests (a fresh connection each, 10 s timeout) meanwhile.
Prints the median and the slowest answer, and how many got no answer in time.

  bench/web_slow_clients.py --upframe build/upframe [--slow 0 60] [--requests 20]
"""
import argparse
import http.client
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def trickle(port, count, connected, stop):
    """Keeps `count` connections sending a header line every 0.5 s until `stop` is set;
    `connected` is set once all are open."""
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
        sockets.append(s)
    connected.set()
    closed_by_server = 0
    n = 0
    while not stop.is_set():
        for i, s in enumerate(sockets):
            if s is None:
                continue
            try:
                readable, _, _ = select.select([s], [], [], 0)
                if readable and s.recv(1, socket.MSG_DONTWAIT) == b"":
                    raise ConnectionResetError("closed by the server")
                s.sendall(f"X-Slow-{n}: {i}\r\n".encode())
            except OSError:
                s.close()
                sockets[i] = None
                closed_by_server += 1
                # A slow client that is cut off comes back (as an attacker would).
                try:
                    s = socket.create_connection(("127.0.0.1", port))
                    s.sendall(f"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
                    sockets[i] = s
                except OSError:
                    pass
        n += 1
        stop.wait(0.5)
    for s in sockets:
        if s is not None:
            s.close()
    return closed_by_server


def time_requests(port, count):
    times, failed = [], 0
    for _ in range(count):
        start = time.monotonic()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/api/jobs")
            r = c.getresponse()
            r.read()
            c.close()
            if r.status != 200:
                failed += 1
                continue
            times.append(time.monotonic() - start)
        except OSError:
            failed += 1
        time.sleep(0.2)
    return times, failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upframe", default="build/upframe")
    parser.add_argument("--slow", type=int, nargs="+", default=[0, 60])
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        env = dict(os.environ, XDG_STATE_HOME=os.path.join(tmp, "state"))
        server = subprocess.Popen([args.upframe, "serve", "--port", "0", "--root", root],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                  text=True)
        try:
            url = server.stdout.readline().strip()
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            print(f"{args.upframe}: {url}")
            for slow in args.slow:
                stop, connected = threading.Event(), threading.Event()
                result = {}
                t = threading.Thread(
                    target=lambda: result.update(closed=trickle(port, slow, connected, stop)))
                started = time.monotonic()
                t.start()
                connected.wait()
                print(f"{slow:3d} slow clients connected in {time.monotonic() - started:.1f} s")
                time.sleep(1.0)  # trickling
                times, failed = time_requests(port, args.requests)
                stop.set()
                t.join()
                if times:
                    print(f"{slow:3d} slow clients: {len(times)} answered, median "
                          f"{1000 * statistics.median(times):.1f} ms, slowest "
                          f"{1000 * max(times):.1f} ms; {failed} not answered within 10 s; "
                          f"slow connections closed by the server: {result.get('closed', 0)}")
                else:
                    print(f"{slow:3d} slow clients: none of {args.requests} answered within 10 s")
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    sys.exit(main())
