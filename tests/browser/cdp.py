#!/usr/bin/env python3
"""A minimal Chrome DevTools Protocol client for the browser tests (websocket-client, Debian's
python3-websocket, carries the WebSocket).

Usage: cdp.py DEVTOOLS_PORT URL OUT_HTML OUT_PNG [--no-js] [--wait-refresh SECONDS]

Loads URL in the first page target of an already running headless Chromium, with page
scripts disabled (Emulation.setScriptExecutionDisabled) when --no-js is given, waits for the
load event (and, with --wait-refresh, that many more seconds so an in-page refresh can run),
then writes the rendered DOM (DOM.getOuterHTML) and a screenshot (Page.captureScreenshot).
"""
import base64
import json
import sys
import time
import urllib.request

import websocket

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

# websocket-client (Debian's python3-websocket); no Origin header, which DevTools refuses.
ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)


def send(obj):
    ws.send(json.dumps(obj))


def recv():
    return json.loads(ws.recv())


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
