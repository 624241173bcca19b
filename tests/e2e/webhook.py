#!/usr/bin/env python3
"""Alertmanager webhook receiver for the end-to-end test (Python 3 stdlib only).

usage: webhook.py --listen 127.0.0.1:PORT --out FILE

Every POST body (an Alertmanager webhook notification, JSON) is appended to FILE as one
line: {"received": <unix time>, "path": "/...", "body": {...}}. GET /-/healthy answers 200
so the test can wait for it. Binds loopback only.
"""
import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, help="HOST:PORT (loopback)")
    ap.add_argument("--out", required=True, help="JSON-lines file to append notifications to")
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("webhook.py: refusing to listen on non-loopback address %s" % host)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):  # one line per request on stderr, with a timestamp
            sys.stderr.write("%s webhook: %s\n" % (time.strftime("%H:%M:%S"), fmt % a))

        def do_GET(self):
            if self.path == "/-/healthy":
                self._reply(200, b"ok\n")
            else:
                self._reply(404, b"not found\n")

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n)
            try:
                body = json.loads(raw.decode("utf-8"))
            except ValueError as e:
                body = {"unparsable": raw.decode("utf-8", "replace"), "error": str(e)}
            rec = {"received": time.time(), "path": self.path, "body": body}
            with LOCK, open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec, sort_keys=True) + "\n")
            for a in body.get("alerts", []) if isinstance(body, dict) else []:
                lab = a.get("labels", {})
                sys.stderr.write("%s webhook: %s %s cluster=%s instance=%s\n" % (
                    time.strftime("%H:%M:%S"), a.get("status"), lab.get("alertname"),
                    lab.get("cluster"), lab.get("instance")))
            self._reply(200, b"ok\n")

        def _reply(self, code, data):
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    open(args.out, "a").close()
    srv = ThreadingHTTPServer((host, int(port)), Handler)
    sys.stderr.write("webhook: listening on %s, writing %s\n" % (args.listen, args.out))
    sys.stderr.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
