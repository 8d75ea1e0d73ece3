#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target from the examples of the Faye protocol spec
(/work/shared/spec/faye-protocol.md: sections 2, 4, 5 and the transcripts of Appendix A).

Run from anywhere: python3 fuzz/seeds.py. It rewrites fuzz/corpus/<target>/ entirely.
"""

import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CID = "utm6z2kq0v1x8d3o5s7c9b4n6m2p8r1"  # any 31 characters of [0-9a-z]

HANDSHAKE = {"channel": "/meta/handshake", "version": "1.0",
             "supportedConnectionTypes": ["in-process", "websocket", "long-polling"], "id": "1"}


def j(value):
    return json.dumps(value, separators=(",", ":"))


def write(target, name, data):
    path = os.path.join(HERE, "corpus", target, name)
    with open(path, "wb") as f:
        f.write(data)


# ---- http_request: a control byte, then a request (see fuzz_targets/http_request.rs) ----

REQ = 0x40      # default limits, chunked bodies fed 4 bytes at a time
BARE = 0x80 | 0x10  # a bare chunked body, fed 1 byte at a time


def http_seeds():
    batch = j([HANDSHAKE]).encode()
    form = b"message=" + json.dumps(
        [{"channel": "/meta/connect", "clientId": CID,
          "connectionType": "cross-origin-long-polling", "id": "2"}],
        separators=(",", ":")).replace('"', "%22").replace("/", "%2F").replace(
        "[", "%5B").replace("]", "%5D").replace("{", "%7B").replace("}", "%7D").replace(
        ":", "%3A").replace(",", "%2C").encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (batch[:20], batch[20:]))
    requests = {
        "post_json": b"POST /faye HTTP/1.1\r\nHost: localhost:8000\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(batch), batch),
        "post_form_cors": b"POST /faye HTTP/1.1\r\nHost: localhost:8781\r\n"
                          b"Content-Type: text/plain;charset=UTF-8\r\n"
                          b"Origin: http://127.0.0.1:8780\r\nPragma: no-cache\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (len(form), form),
        "get_jsonp": b"GET /faye?message=%5B%7B%22channel%22%3A%22%2Fmeta%2Fhandshake%22%2C"
                     b"%22version%22%3A%221.0%22%7D%5D&jsonp=__jsonp1__ HTTP/1.1\r\n"
                     b"Host: localhost\r\n\r\n",
        "options_preflight": b"OPTIONS /faye HTTP/1.1\r\nHost: localhost\r\n"
                             b"Origin: http://127.0.0.1:8780\r\n"
                             b"Access-Control-Request-Method: POST\r\n"
                             b"Access-Control-Request-Headers: pragma\r\n\r\n",
        "get_eventsource": b"GET /faye/%s HTTP/1.1\r\nHost: localhost\r\n"
                           b"Accept: text/event-stream\r\n\r\n" % CID.encode(),
        "get_websocket": b"GET /faye HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         b"Sec-WebSocket-Version: 13\r\n"
                         b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        "post_chunked": b"POST /faye HTTP/1.1\r\nHost: localhost\r\n"
                        b"Content-Type: application/json; charset=utf-8\r\n"
                        b"Transfer-Encoding: gzip, chunked\r\n\r\n%s0;last\r\nX-Trailer: 1\r\n\r\n"
                        % chunked,
        "get_client_js_http10": b"GET /faye/client.js HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "pipelined": b"POST /faye HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]"
                     b"GET /faye?message=%5B%5D HTTP/1.1\r\n\r\n",
    }
    for name, request in requests.items():
        write("http_request", name, bytes([REQ]) + request)
    write("http_request", "bare_chunked", bytes([BARE]) +
          b"5;name=value\r\nhello\r\n7 \t; ext=\"q;\"\r\n, world\r\n0\r\nExpires: never\r\n\r\n")


# ---- websocket_frame: a control byte, then masked client frames ----

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(first, payload):
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def text(message):
    return frame(0x81, j(message).encode())


def websocket_seeds():
    connect = [{"channel": "/meta/connect", "clientId": CID, "connectionType": "websocket",
                "id": "2"}]
    subscribe = [{"channel": "/meta/subscribe", "clientId": CID, "subscription": "/demo",
                  "id": "3"}]
    publish = [{"channel": "/demo", "data": {"hello": "world"}, "clientId": CID, "id": "4"}]
    disconnect = [{"channel": "/meta/disconnect", "clientId": CID, "id": "6"}]
    big = [{"channel": "/demo", "data": "x" * 300, "clientId": CID, "id": "7"}]
    halves = j(subscribe).encode()
    seeds = {
        "connect": text(connect),
        "subscribe": text(subscribe),
        "publish": text(publish),
        "publish_126": text(big),
        "session": text(connect) + text(subscribe) + text(publish) + text(disconnect)
        + frame(0x88, struct.pack("!H", 1000)),
        "fragmented_with_ping": frame(0x01, halves[:10]) + frame(0x89, b"1")
        + frame(0x80, halves[10:]),
        "ping_pong_close": frame(0x89, b"1") + frame(0x8A, b"2")
        + frame(0x88, struct.pack("!H", 1001) + "bye é".encode()),
        "binary": frame(0x82, bytes(range(256))),
    }
    for name, stream in seeds.items():
        write("websocket_frame", name, bytes([0]) + stream)


# ---- bayeux_batch: lines of a control character (XOR 0x20) and a JSON body ----

HTTP0, HTTP1, WS0, WS1 = " ", "!", '"', "#"
MOUNT1 = 0x04
PAUSE_1S, PAUSE_TIMEOUT, PAUSE_EXPIRE = 0x08, 0x10, 0x18
CLOSE, STREAM, DRAIN = 0x20, 0x40, 0x80


def ctrl(base, *flags):
    value = ord(base) ^ 0x20
    for flag in flags:
        value |= flag
    return chr(value ^ 0x20)


def session(lines):
    return "\n".join(c + (body if isinstance(body, str) else j(body)) for c, body in lines)


def bayeux_seeds():
    hs = dict(HANDSHAKE)
    long_polling = [
        (HTTP0, [hs]),
        (HTTP0, [{"channel": "/meta/connect", "clientId": "0", "connectionType": "long-polling",
                  "id": "2", "advice": {"timeout": 0}},
                 {"channel": "/meta/subscribe", "clientId": "0", "subscription": "/demo",
                  "id": "3"}]),
        (HTTP0, [{"channel": "/meta/connect", "clientId": "0", "connectionType": "long-polling",
                  "id": "4", "advice": {"timeout": 0}},
                 {"channel": "/demo", "data": {"hello": "world"}, "clientId": "0", "id": "5"}]),
        (HTTP0, [{"channel": "/meta/connect", "clientId": "0", "connectionType": "long-polling",
                  "id": "6"}]),
        (HTTP0, [{"channel": "/meta/disconnect", "clientId": "0", "id": "9"}]),
    ]
    websocket = [
        (HTTP0, [hs]),
        (WS0, [{"channel": "/meta/connect", "clientId": "0", "connectionType": "websocket",
                "id": "2"}]),
        (WS0, [{"channel": "/meta/subscribe", "clientId": "0", "subscription": "/demo",
                "id": "3"}]),
        (WS0, [{"channel": "/demo", "data": {"hello": "world"}, "clientId": "0", "id": "4"}]),
        (WS0, [{"channel": "/meta/connect", "clientId": "0", "connectionType": "websocket",
                "id": "5"}]),
        (WS0, [{"channel": "/meta/disconnect", "clientId": "0", "id": "6"}]),
    ]
    eventsource = [
        (HTTP1, [hs]),
        (ctrl(HTTP1, STREAM), [{"channel": "/meta/subscribe", "clientId": "0",
                                "subscription": ["/es", "/es/**"]}]),
        (HTTP0, [{"channel": "/es", "data": "line1\nline2", "id": "e1"},
                 {"channel": "/es", "data": {"b": 2}}]),
        (HTTP1, [{"channel": "/meta/connect", "clientId": "0", "connectionType": "eventsource",
                  "id": "c"}]),
        (ctrl(HTTP1, CLOSE), "null"),
    ]
    errors = [
        (HTTP0, [{"channel": "/meta/handshake", "supportedConnectionTypes": "long-polling"},
                 {"channel": "/meta/handshake", "version": "99.9-beta",
                  "supportedConnectionTypes": []},
                 {"channel": "/meta/handshake", "version": "1.0", "id": 0}]),
        (HTTP0, [{"channel": "/meta/connect", "clientId": "nosuchclient",
                  "connectionType": "flash", "id": "1"},
                 {"channel": "/meta/connect", "connectionType": "long-polling"}]),
        (HTTP0, [hs]),
        (HTTP0, [{"channel": "/meta/subscribe", "clientId": "0", "id": "6",
                  "subscription": ["/p1", "/bad.x", "/p2"]},
                 {"channel": "/meta/subscribe", "clientId": "0", "subscription": "/service/x"},
                 {"channel": "/meta/unsubscribe", "clientId": "0", "subscription": "/never"}]),
        (HTTP0, [{"channel": "/a", "data": 1, "error": "999:custom:err"},
                 {"channel": "/foo/*", "data": 1}, {"channel": "/meta/"},
                 {"channel": "/meta/foo"}, {"channel": "/meta/*"}, {"data": None}]),
        (HTTP0, "[null,1,\"x\",[],true]"),
        (HTTP0, "{}"),
        (HTTP0, "1"),
        (HTTP0, "\"str\""),
        (HTTP0, "[ }"),
        (HTTP0, "\ufeff[]"),
    ]
    patterns = [
        (HTTP0, [hs]),
        (HTTP1, [hs]),
        (HTTP0, [{"channel": "/meta/subscribe", "clientId": "1",
                  "subscription": ["/foo/bar", "/foo/*", "/foo/**", "/**"]}]),
        (ctrl(HTTP1, MOUNT1), [{"channel": "/meta/subscribe", "clientId": "0",
                                "subscription": "/foo/*"}]),
        (HTTP1, [{"channel": "/meta/subscribe", "clientId": "0", "subscription": "/*"}]),
        (HTTP0, [{"channel": "/foo/bar", "data": "hi", "id": "pp", "clientId": "0",
                  "ext": {"password": "pw"}, "advice": {"a": 1}},
                 {"channel": "/service/x", "data": [1, 2.5, None, True]},
                 {"channel": "/w", "data": {}}]),
        (ctrl(HTTP0, PAUSE_1S), [{"channel": "/meta/connect", "clientId": "1",
                                  "connectionType": "long-polling", "advice": {"timeout": "1000"}},
                                 {"channel": "/meta/connect", "clientId": "0",
                                  "connectionType": "in-process"}]),
        (HTTP1, [{"channel": "/meta/unsubscribe", "clientId": "0", "subscription": ["/*"]},
                 {"channel": "/meta/disconnect", "clientId": "1"}]),
    ]
    expiry = [
        (HTTP0, [hs]),
        (WS1, [{"channel": "/meta/connect", "clientId": "0", "connectionType": "websocket"}]),
        (WS1, [{"channel": "/meta/subscribe", "clientId": "0", "subscription": "/x/**"}]),
        (ctrl(HTTP0, PAUSE_TIMEOUT), [{"channel": "/x/y", "data": 1}]),
        (ctrl(HTTP0, PAUSE_EXPIRE), [{"channel": "/x/y", "data": 2}]),
        (ctrl(WS1, DRAIN), [{"channel": "/meta/connect", "clientId": "0",
                             "connectionType": "websocket"}]),
    ]
    for name, lines in [("long_polling", long_polling), ("websocket", websocket),
                        ("eventsource", eventsource), ("errors", errors),
                        ("patterns", patterns), ("expiry", expiry)]:
        write("bayeux_batch", name, session(lines).encode())


def main():
    for target in ("http_request", "websocket_frame", "bayeux_batch"):
        path = os.path.join(HERE, "corpus", target)
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
    http_seeds()
    websocket_seeds()
    bayeux_seeds()


if __name__ == "__main__":
    main()
