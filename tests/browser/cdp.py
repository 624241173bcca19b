#!/usr/bin/env python3
"""A minimal Chrome DevTools Protocol client (standard library only) for the browser tests.

Usage: cdp.py DEVTOOLS_PORT URL OUT_HTML OUT_PNG [--no-js] [--wait-refresh SECONDS]

Loads URL in the first page target of an already running headless Chromium, with page
scripts disabled (Emulation.setScriptExecutionDisabled) when --no-js is given, waits for the
load event (and, with --wait-refresh, that many more seconds so an in-page refresh can run),
then writes the rendered DOM (DOM.getOuterHTML) and a screenshot (Page.captureScreenshot).
"""
import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.request

port, url, html_out, png_out = sys.argv[1:5]
no_js = "--no-js" in sys.argv
wait_refresh = 0.0
if "--wait-refresh" in sys.argv:
    wait_refresh = float(sys.argv[sys.argv.index("--wait-refresh") + 1])

targets = None
for _ in range(200):
    try:
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2))
        if any(t.get("type") == "page" for t in targets):
            break
    except OSError:
        pass
    time.sleep(0.1)
if not targets:
    sys.exit("FAIL: no DevTools endpoint on port " + port)
page = next(t for t in targets if t.get("type") == "page")
path = page["webSocketDebuggerUrl"].split(f":{port}", 1)[1]

sock = socket.create_connection(("127.0.0.1", int(port)), timeout=60)
key = base64.b64encode(os.urandom(16)).decode()
sock.sendall(
    (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
)
head = b""
while b"\r\n\r\n" not in head:
    head += sock.recv(1)
if b" 101 " not in head.split(b"\r\n")[0]:
    sys.exit("FAIL: DevTools refused the websocket: " + head.decode(errors="replace"))
buf = b""


def recv_exact(n):
    global buf
    while len(buf) < n:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise EOFError("DevTools closed the connection")
        buf += chunk
    out, buf = buf[:n], buf[n:]
    return out


def send(obj):
    data = json.dumps(obj).encode()
    mask = os.urandom(4)
    n = len(data)
    if n < 126:
        hdr = bytes([0x81, 0x80 | n])
    elif n < 65536:
        hdr = bytes([0x81, 0x80 | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([0x81, 0x80 | 127]) + struct.pack(">Q", n)
    sock.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def recv():
    msg = b""
    while True:
        b0, b1 = recv_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", recv_exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", recv_exact(8))[0]
        payload = recv_exact(n)
        opcode = b0 & 0x0F
        if opcode in (0x8,):
            raise EOFError("DevTools closed the websocket")
        if opcode in (0x9, 0xA):
            continue
        msg += payload
        if b0 & 0x80:
            return json.loads(msg)


next_id = 0
events = []


def call(method, params=None):
    global next_id
    next_id += 1
    send({"id": next_id, "method": method, "params": params or {}})
    while True:
        m = recv()
        if m.get("id") == next_id:
            if "error" in m:
                sys.exit(f"FAIL: {method}: {m['error']}")
            return m.get("result", {})
        events.append(m)


def wait_event(name, limit=30.0):
    deadline = time.time() + limit
    while time.time() < deadline:
        if any(e.get("method") == name for e in events):
            return
        events.append(recv())
    sys.exit(f"FAIL: no {name} within {limit}s")


call("Page.enable")
if no_js:
    call("Emulation.setScriptExecutionDisabled", {"value": True})
call(
    "Emulation.setDeviceMetricsOverride",
    {"width": 1200, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
)
events.clear()
call("Page.navigate", {"url": url})
wait_event("Page.loadEventFired")
if wait_refresh:
    time.sleep(wait_refresh)
root = call("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
html = call("DOM.getOuterHTML", {"nodeId": root})["outerHTML"]
with open(html_out, "w", encoding="utf-8") as f:
    f.write(html)
png = call("Page.captureScreenshot", {"format": "png"})["data"]
with open(png_out, "wb") as f:
    f.write(base64.b64decode(png))
