"""HTTP client of spec/ui_spec.lua: real requests to tide's UI server.

  ui_http.py get URL              {"status":, "type":, "body":} as JSON
  ui_http.py metrics URL          the samples as the Prometheus client's parser
                                  reads them: [[name, labels, value, family type], ...]
  ui_http.py raw HOST PORT KIND   a bad request; prints the answer's status line
                                  (or "closed" when the server closed without one)
     KIND: garbage  bytes that are no HTTP
           bigheader  a request with a 1 MiB header
           slow     half a request, then nothing (the server's timeout answers)
           post     a POST (the server serves reads only)
"""
import json
import socket
import sys
import urllib.error
import urllib.request


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def raw(host, port, kind):
    s = socket.create_connection((host, int(port)), timeout=30)
    if kind == "garbage":
        s.sendall(b"\x00\xff\x13\x37 not http at all\r\n\r\n")
    elif kind == "bigheader":
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
    elif kind == "slow":
        s.sendall(b"GET /metrics HTTP/1.1\r\nHo")
    elif kind == "post":
        s.sendall(b"POST /api/queries HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    print(data.split(b"\r\n")[0].decode() if data else "closed")


def main():
    cmd = sys.argv[1]
    if cmd == "get":
        status, ctype, body = get(sys.argv[2])
        print(json.dumps({"status": status, "type": ctype, "body": body}))
    elif cmd == "metrics":
        from prometheus_client.parser import text_string_to_metric_families
        status, ctype, body = get(sys.argv[2])
        out = []
        for fam in text_string_to_metric_families(body):
            for s in fam.samples:
                out.append([s.name, s.labels, s.value, fam.type])
        print(json.dumps(out))
    elif cmd == "raw":
        raw(sys.argv[2], sys.argv[3], sys.argv[4])


main()
