#!/usr/bin/env python3
"""Slow-client load for bench/slowloris.sh: holds many slow HTTP connections to xrelay on
loopback while posting normal messages, and prints what happened to both.

Slow clients, in equal thirds:
  idle     send the request line and one header, then nothing (never finish the headers)
  headers  trickle a header block, one byte every TRICKLE seconds
  body     send complete headers for a 60,000-byte body, then trickle it; with the API key
           (an insider: the request is being answered and keeps its slot) or, with
           BODY_AUTH=none, without one (refused with 401 as soon as the headers are in)

Normal traffic: one POST /msg/TO?wait=1 every INTERVAL seconds, each on a new connection
(answered once the XMPP server acknowledged the message).

Everything stops by itself after DURATION seconds; only 127.0.0.1 is contacted.

usage: slowloris.py PORT TOKEN TO [SLOW=1000] [DURATION=100] [INTERVAL=0.5] [BODY_AUTH=key]
"""

import asyncio
import base64
import statistics
import sys
import time

TRICKLE = 2.0
CONNECT_TIMEOUT = 30.0
POST_TIMEOUT = 90.0


async def slow_client(kind, port, token, body_auth, t0, results):
    rec = {"kind": kind, "connected": None, "closed": None, "status": None}
    results.append(rec)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), CONNECT_TIMEOUT)
    except (OSError, asyncio.TimeoutError):
        rec["closed"] = "connect-failed"
        return
    rec["connected"] = time.monotonic() - t0
    if kind == "idle":
        head, drip = b"POST /msg/x HTTP/1.1\r\nHost: a\r\n", b""
    elif kind == "headers":
        head, drip = b"POST /msg/x HTTP/1.1\r\n", b"X-Slow: " + b"a" * 4000 + b"\r\n"
    else:
        auth = "Authorization: Bearer " + token + "\r\n" if body_auth == "key" else ""
        head = ("POST /msg/x HTTP/1.1\r\nHost: a\r\n" + auth +
                "Content-Type: text/plain\r\nContent-Length: 60000\r\n\r\n").encode()
        drip = b"z" * 60000

    async def dripper():
        try:
            writer.write(head)
            await writer.drain()
            for i in range(len(drip)):
                await asyncio.sleep(TRICKLE)
                writer.write(drip[i:i + 1])
                await writer.drain()
        except (OSError, ConnectionError):
            pass

    task = asyncio.ensure_future(dripper())
    try:
        data = await reader.read(4096)
        rec["closed"] = time.monotonic() - t0
        if data.startswith(b"HTTP/1.1 "):
            rec["status"] = int(data[9:12])
    except (OSError, ConnectionError):
        rec["closed"] = time.monotonic() - t0
    except asyncio.CancelledError:
        pass
    finally:
        task.cancel()
        writer.close()


async def normal_post(port, token, to, n, t0, results):
    start = time.monotonic()
    rec = {"start": start - t0, "status": None, "latency": None}
    results.append(rec)
    body = ("normal post %d" % n).encode()
    req = ("POST /msg/%s?wait=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
           % (to, token, len(body))).encode() + body

    async def once():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(req)
        await writer.drain()
        data = await reader.read()
        writer.close()
        return data

    try:
        data = await asyncio.wait_for(once(), POST_TIMEOUT)
        if data.startswith(b"HTTP/1.1 "):
            rec["status"] = int(data[9:12])
    except (OSError, ConnectionError, asyncio.TimeoutError):
        pass
    rec["latency"] = time.monotonic() - start


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


async def main():
    port, token, to = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    slow = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    duration = float(sys.argv[5]) if len(sys.argv) > 5 else 100.0
    interval = float(sys.argv[6]) if len(sys.argv) > 6 else 0.5
    body_auth = sys.argv[7] if len(sys.argv) > 7 else "key"
    t0 = time.monotonic()
    slow_results, post_results, tasks = [], [], []
    kinds = ["idle", "headers", "body"]
    for i in range(slow):
        tasks.append(asyncio.ensure_future(
            slow_client(kinds[i % 3], port, token, body_auth, t0, slow_results)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    n = 0
    post_tasks = []
    stop_posts = duration - POST_TIMEOUT / 3
    while time.monotonic() - t0 < stop_posts:
        post_tasks.append(asyncio.ensure_future(
            normal_post(port, token, to, n, t0, post_results)))
        n += 1
        await asyncio.sleep(interval)
    await asyncio.wait(post_tasks, timeout=max(1.0, duration - (time.monotonic() - t0)))
    for t in tasks + post_tasks:
        t.cancel()
    await asyncio.gather(*tasks, *post_tasks, return_exceptions=True)

    print("slow connections: %d (%s)" % (slow, ", ".join(
        "%s %d" % (k, sum(1 for r in slow_results if r["kind"] == k)) for k in kinds)))
    for k in kinds:
        rs = [r for r in slow_results if r["kind"] == k]
        closed = [r["closed"] for r in rs if isinstance(r["closed"], float)]
        held = [c - r["connected"] for r in rs for c in [r["closed"]]
                if isinstance(c, float) and r["connected"] is not None]
        statuses = sorted({r["status"] for r in rs if r["status"]})
        print("  %-7s connected %4d, closed by the server %4d (held p50 %.1f s, max %.1f s),"
              " still open at the end %4d, connect failed %d, answers %s" % (
                  k, sum(1 for r in rs if r["connected"] is not None), len(closed),
                  pct(held, 50), max(held) if held else float("nan"),
                  sum(1 for r in rs if r["connected"] is not None and r["closed"] is None),
                  sum(1 for r in rs if r["closed"] == "connect-failed"),
                  statuses or "none"))
    ok = [r for r in post_results if r["status"] == 200]
    lat = [r["latency"] for r in ok]
    print("normal posts: %d sent, %d acknowledged (200), %d other answers %s, %d without answer"
          % (len(post_results), len(ok),
             sum(1 for r in post_results if r["status"] not in (None, 200)),
             sorted({r["status"] for r in post_results if r["status"] not in (None, 200)}),
             sum(1 for r in post_results if r["status"] is None)))
    if lat:
        print("  latency: p50 %.2f s, p95 %.2f s, max %.2f s, mean %.2f s" % (
            pct(lat, 50), pct(lat, 95), max(lat), statistics.mean(lat)))
    early = [r for r in ok if r["start"] < 15]
    late = [r for r in ok if r["start"] >= 15]
    for name, rs in (("  started in the first 15 s", early), ("  started after 15 s", late)):
        if rs:
            print("%s: %d acknowledged, latency p50 %.2f s, max %.2f s" % (
                name, len(rs), pct([r["latency"] for r in rs], 50),
                max(r["latency"] for r in rs)))


if __name__ == "__main__":
    asyncio.run(main())
