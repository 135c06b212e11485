#!/usr/bin/env python3
"""A small HTTPS server standing in for Splunk HEC and webhook receivers in
fnwatch's end-to-end tests. Python 3 standard library only (plus the openssl
CLI to make its certificate).

Usage:
    python3 tests/e2e/https_sink.py --dir DIR [--port 0] [--fail-first N]
        [--hang-first M] [--hang-seconds S] [--delay-seconds S] [--token TOKEN]
        [--max-body BYTES] [--refuse-containing TEXT] [--verbose]

- Makes a self-signed certificate for localhost and 127.0.0.1 (subjectAltName
  DNS:localhost, IP:127.0.0.1; CA:FALSE, so rustls accepts it as the server's
  certificate) in DIR/cert.pem and DIR/key.pem unless both are already there.
  A client trusts DIR/cert.pem as its only CA.
- Listens on 127.0.0.1:PORT (0 picks a free port), writes the port to
  DIR/port (atomically) and prints `listening PORT` on stdout. Its own pid
  goes to DIR/pid (the pid a launcher sees may be a wrapper's).
- POST to any path:
    * with --token, a POST without `Authorization: Splunk TOKEN` or
      `Authorization: Bearer TOKEN` gets 401 {"text":"Invalid token","code":4};
      it does not count towards N or M below;
    * with --max-body, a POST whose (decompressed) body is longer gets 413
      {"text":"Content too large","code":27}; with --refuse-containing, one
      whose body contains TEXT gets 400 {"text":"Invalid data format","code":6}
      (as HEC answers an event it cannot parse); neither counts towards N or M;
    * the first N POSTs (over the server's life) get 503 with Retry-After: 1
      and {"text":"Server is busy","code":9};
    * the next M POSTs get no answer for S seconds (--hang-seconds, default
      30), to make clients time out, and then 503;
    * every later POST gets 200 {"text":"Success","code":0} (HEC's answer).
  A 200 POST is appended to DIR/received.jsonl, any other to
  DIR/attempts.jsonl (a hung one as soon as it arrives, with "hung": true),
  one JSON object per line:
    {"seq": 1, "method": "POST", "path": "/services/collector/event?x=y",
     "headers": {"lowercased-name": "value", ...}, "body": "<UTF-8 text>",
     "status": 200}
  "seq" numbers every POST from 1. A body sent with Content-Encoding gzip is
  recorded decompressed. Bytes that are not valid UTF-8 are recorded as U+FFFD
  and the record gets "body_invalid_utf8": true. Chunked request bodies are
  accepted. Writes are flushed and serialised by a lock.
- GET /health answers 200 {"status":"ok"} (no token needed); other GETs 404.
- SIGTERM or SIGINT: stops listening and exits 0.
"""

import argparse
import gzip
import http.server
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading

SUCCESS = b'{"text":"Success","code":0}'
BUSY = b'{"text":"Server is busy","code":9}'
INVALID_TOKEN = b'{"text":"Invalid token","code":4}'
HEALTHY = b'{"status":"ok"}'

OPENSSL_CONF = """\
[req]
distinguished_name = dn
x509_extensions = v3
prompt = no
[dn]
CN = localhost
[v3]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
"""


def ensure_cert(directory):
    """Makes DIR/cert.pem and DIR/key.pem unless both exist. Written under
    temporary names and renamed, so a reader never sees half a file."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    if all(os.path.isfile(p) and os.path.getsize(p) > 0 for p in (cert, key)):
        return cert, key
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        conf = os.path.join(tmp, "openssl.cnf")
        with open(conf, "w") as f:
            f.write(OPENSSL_CONF)
        tcert, tkey = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        try:
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-sha256", "-days", "3650", "-config", conf,
                 "-keyout", tkey, "-out", tcert],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except FileNotFoundError:
            sys.exit("https_sink: the openssl CLI is missing; run: apt-get install -y openssl")
        except subprocess.CalledProcessError as e:
            sys.exit("https_sink: openssl failed: " + e.stderr.decode(errors="replace"))
        os.chmod(tkey, 0o600)
        os.replace(tkey, key)
        os.replace(tcert, cert)
    return cert, key


class Sink:
    """What the handlers share: the settings, the POST counter and the files."""

    def __init__(self, directory, fail_first, hang_first, hang_seconds, token, delay_seconds=0.0):
        self.directory = directory
        self.delay_seconds = delay_seconds
        self.fail_first = fail_first
        self.hang_first = hang_first
        self.hang_seconds = hang_seconds
        self.token = token
        self.lock = threading.Lock()
        self.posts = 0  # POSTs that passed the token check
        self.seq = 0  # every POST
        self.stopping = threading.Event()
        self.received = open(os.path.join(directory, "received.jsonl"), "a", encoding="utf-8")
        self.attempts = open(os.path.join(directory, "attempts.jsonl"), "a", encoding="utf-8")

    def next_seq(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def next_outcome(self):
        """The outcome of the next authorised POST: 'fail', 'hang' or 'ok'."""
        with self.lock:
            self.posts += 1
            n = self.posts
        if n <= self.fail_first:
            return "fail"
        if n <= self.fail_first + self.hang_first:
            return "hang"
        return "ok"

    def authorised(self, headers):
        if self.token is None:
            return True
        values = headers.get_all("Authorization") or []
        return any(v.strip() in ("Splunk " + self.token, "Bearer " + self.token) for v in values)

    def record(self, ok, entry):
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self.lock:
            f = self.received if ok else self.attempts
            if f.closed:  # a request still running while the server stops
                return
            f.write(line)
            f.flush()

    def close(self):
        with self.lock:
            self.received.close()
            self.attempts.close()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as HEC clients expect
    server_version = "fnwatch-https-sink"
    sys_version = ""
    timeout = 120  # idle keep-alive connections and slow TLS handshakes
    # Headers and body go out in separate writes: without TCP_NODELAY a
    # keep-alive client waits ~40 ms (delayed ACK) on every request.
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        # The listening socket does not handshake on accept (that would run in
        # the accept loop); each connection does it here, in its own thread.
        self.connection.do_handshake()

    @property
    def sink(self):
        return self.server.sink

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("https_sink: %s %s\n" % (self.address_string(), fmt % args))

    def reply(self, status, body, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)  # CRLF after the chunk
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def entry(self, seq, raw, status):
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers else value
        if "gzip" in self.headers.get("Content-Encoding", "").lower():
            try:
                raw = gzip.decompress(raw)
            except OSError:
                pass
        try:
            body, invalid = raw.decode("utf-8"), False
        except UnicodeDecodeError:
            body, invalid = raw.decode("utf-8", errors="replace"), True
        e = {"seq": seq, "method": self.command, "path": self.path,
             "headers": headers, "body": body, "status": status}
        if invalid:
            e["body_invalid_utf8"] = True
        return e

    def do_POST(self):
        raw = self.read_body()
        seq = self.sink.next_seq()
        if not self.sink.authorised(self.headers):
            self.sink.record(False, self.entry(seq, raw, 401))
            self.reply(401, INVALID_TOKEN)
            return
        plain = raw
        if "gzip" in self.headers.get("Content-Encoding", "").lower():
            try:
                plain = gzip.decompress(raw)
            except OSError:
                pass
        if self.server.max_body is not None and len(plain) > self.server.max_body:
            self.sink.record(False, self.entry(seq, raw, 413))
            self.reply(413, b'{"text":"Content too large","code":27}')
            return
        refuse = self.server.refuse_containing
        if refuse is not None and refuse.encode("utf-8") in plain:
            self.sink.record(False, self.entry(seq, raw, 400))
            self.reply(400, b'{"text":"Invalid data format","code":6}')
            return
        outcome = self.sink.next_outcome()
        if outcome == "fail":
            self.sink.record(False, self.entry(seq, raw, 503))
            self.reply(503, BUSY, [("Retry-After", "1")])
        elif outcome == "hang":
            e = self.entry(seq, raw, 503)
            e["hung"] = True
            self.sink.record(False, e)
            self.sink.stopping.wait(self.sink.hang_seconds)
            self.reply(503, BUSY, [("Retry-After", "1")])
        else:
            # A slow receiver: the request is recorded (received) before the
            # pause, as a SIEM that has the data but has not answered yet.
            self.sink.record(True, self.entry(seq, raw, 200))
            if self.sink.delay_seconds > 0:
                self.sink.stopping.wait(self.sink.delay_seconds)
            self.reply(200, SUCCESS)

    def do_GET(self):
        if self.path.split("?", 1)[0] == "/health":
            self.reply(200, HEALTHY)
        else:
            self.reply(404, b'{"text":"Not found","code":404}')


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # Clients that time out, drop the connection or fail the handshake are
        # expected in these tests: one line, not a traceback.
        if self.verbose:
            exc = sys.exc_info()[1]
            sys.stderr.write("https_sink: %s: %s\n" % (client_address, exc))


def main():
    ap = argparse.ArgumentParser(description="HTTPS stand-in for Splunk HEC and webhooks")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fail-first", type=int, default=0, metavar="N")
    ap.add_argument("--hang-first", type=int, default=0, metavar="M")
    ap.add_argument("--hang-seconds", type=float, default=30.0, metavar="S")
    ap.add_argument("--token")
    ap.add_argument("--delay-seconds", type=float, default=0.0, metavar="S",
                    help="pause before answering each successful POST (a slow receiver)")
    ap.add_argument("--max-body", type=int, default=None, metavar="BYTES")
    ap.add_argument("--refuse-containing", default=None, metavar="TEXT")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    directory = os.path.abspath(args.dir)
    os.makedirs(directory, exist_ok=True)
    cert, key = ensure_cert(directory)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)

    server = Server(("127.0.0.1", args.port), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                    do_handshake_on_connect=False)
    server.verbose = args.verbose
    server.max_body = args.max_body
    server.refuse_containing = args.refuse_containing
    server.sink = Sink(directory, args.fail_first, args.hang_first, args.hang_seconds, args.token,
                       args.delay_seconds)
    port = server.server_address[1]

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="serve", daemon=True)
    thread.start()

    for name, value in (("pid", os.getpid()), ("port", port)):  # port last
        tmp = os.path.join(directory, "%s.tmp.%d" % (name, os.getpid()))
        with open(tmp, "w") as f:
            f.write("%d\n" % value)
        os.replace(tmp, os.path.join(directory, name))
    print("listening %d" % port, flush=True)

    while not stop.wait(0.2):
        pass
    server.sink.stopping.set()  # hung requests answer now
    server.shutdown()
    server.server_close()
    server.sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
