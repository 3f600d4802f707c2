#!/usr/bin/env python3
"""xrelay webhook echo bot: answers every message with its text reversed.

xrelay config: [webhook] url = "http://127.0.0.1:9999/", format = "json", and the same
secret as XRELAY_WEBHOOK_SECRET here (docs/webhooks.md). Standard library only;
tests/access.rs runs this file as it is.
"""
import hashlib, hmac, json, os, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ.get("XRELAY_WEBHOOK_SECRET", "").encode()

class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if SECRET:  # signed as TIMESTAMP.BODY; an old timestamp is a replay
            ts = self.headers.get("X-Xrelay-Timestamp", "")
            want = "sha256=" + hmac.new(SECRET, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            if not (ts.isdigit() and abs(time.time() - int(ts)) <= 300
                    and hmac.compare_digest(want, self.headers.get("X-Xrelay-Signature", ""))):
                self.send_response(403); self.end_headers(); return
        stanza = json.loads(body)
        if stanza["kind"] != "message" or "body" not in stanza:
            self.send_response(204); self.end_headers(); return   # no reply
        reply = json.dumps({"body": stanza["body"][::-1]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 9999  # python3 echo_bot.py [PORT]
HTTPServer(("127.0.0.1", PORT), Hook).serve_forever()
