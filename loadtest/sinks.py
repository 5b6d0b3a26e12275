"""What receives what the portal sends, each in a process of its own, logging every
event as one JSON line so that the verdicts count what really arrived.

- `smtp`: a real SMTP server (aiosmtpd) on loopback. Every accepted message
  is logged with its Message-ID, envelope recipients and subject. While the
  file given by --slow-file exists, the server waits that file's number of
  seconds before answering each RCPT, before any message is accepted (a
  slow relay: it keeps a delivery task busy long enough to kill its worker).
- `sms`: an SMS gateway speaking the portal's webhook (`POST {"id", "to",
  "text"}`, HMAC-SHA256 in `X-Signature-SHA256`). It checks each signature,
  and behaves as --mode-file says: `ok` (200), or `fail-then-timeout:N`
  (per message id: 500 the first time, then N seconds of silence before a
  200 the second time, 200 afterwards). Like a real gateway it takes a
  message once it has read it, even if its answer comes too late for the
  portal; it drops a second copy of an id it already took (the idempotency
  the webhook's `id` is for), and logs both.

Run: python -m loadtest.sinks smtp --port P --log FILE [--slow-file F]
     python -m loadtest.sinks sms --port P --log FILE --mode-file F  (secret in SMS_SINK_SECRET)
"""

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import time
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class JsonLog:
    def __init__(self, path: Path):
        self.file = path.open("a", buffering=1)
        self.lock = threading.Lock()

    def write(self, **event) -> None:
        event["time"] = time.time()
        with self.lock:
            self.file.write(json.dumps(event, ensure_ascii=False) + "\n")
            self.file.flush()


def read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill
    return events


# --- SMTP --------------------------------------------------------------------------------------


class SmtpHandler:
    def __init__(self, log: JsonLog, slow_file: Path | None):
        self.log = log
        self.slow_file = slow_file

    def _slow_seconds(self) -> float:
        if self.slow_file is None:
            return 0.0
        try:
            return float(self.slow_file.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0.0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        seconds = self._slow_seconds()
        if seconds:
            self.log.write(event="rcpt_wait", rcpt=address, seconds=seconds)
            await asyncio.sleep(seconds)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        headers = BytesHeaderParser().parsebytes(envelope.content)
        subject = str(make_header(decode_header(headers.get("Subject", ""))))
        self.log.write(
            event="message",
            message_id=headers.get("Message-ID", ""),
            rcpt_tos=list(envelope.rcpt_tos),
            subject=subject,
            size=len(envelope.content),
        )
        return "250 Message accepted for delivery"


def run_smtp(port: int, log_path: Path, slow_file: Path | None) -> None:
    from aiosmtpd.controller import Controller

    log = JsonLog(log_path)
    controller = Controller(SmtpHandler(log, slow_file), hostname="127.0.0.1", port=port)
    controller.start()
    log.write(event="started", port=port, pid=os.getpid())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"smtp sink on 127.0.0.1:{port}", flush=True)
    stop.wait()
    controller.stop()
    log.write(event="stopped")


# --- SMS ---------------------------------------------------------------------------------------


class SmsGateway:
    def __init__(self, log: JsonLog, secret: str, mode_file: Path | None):
        self.log = log
        self.secret = secret.encode()
        self.mode_file = mode_file
        self.attempts: dict[str, int] = {}
        self.taken: set[str] = set()
        self.lock = threading.Lock()

    def mode(self) -> str:
        if self.mode_file is None:
            return "ok"
        try:
            return self.mode_file.read_text().strip() or "ok"
        except OSError:
            return "ok"

    def take(self, message_id: str) -> bool:
        """True the first time an id is taken (sent to the phone), False for a duplicate."""
        with self.lock:
            first = message_id not in self.taken
            self.taken.add(message_id)
            return first


def sms_handler(gateway: SmsGateway):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # the JSON log says it all
            pass

        def _answer(self, status: int) -> bool:
            try:
                body = b'{"status": "ok"}' if status == 200 else b'{"status": "error"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                return True
            except OSError:
                return False  # the portal gave up waiting

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
            expected = hmac.new(gateway.secret, body, hashlib.sha256).hexdigest()
            signature_ok = hmac.compare_digest(expected, self.headers.get("X-Signature-SHA256", ""))
            try:
                payload = json.loads(body)
                message_id = str(payload["id"])
            except (ValueError, KeyError, TypeError):
                gateway.log.write(event="post", answer=400, signature_ok=signature_ok)
                self._answer(400)
                return
            if not signature_ok:
                gateway.log.write(event="post", id=message_id, answer=401, signature_ok=False)
                self._answer(401)
                return
            with gateway.lock:
                attempt = gateway.attempts[message_id] = gateway.attempts.get(message_id, 0) + 1
            mode = gateway.mode()
            common = {
                "id": message_id,
                "to": payload.get("to", ""),
                "attempt": attempt,
                "signature_ok": True,
                "text_sha256": hashlib.sha256(payload.get("text", "").encode()).hexdigest(),
                "mode": mode,
            }
            if mode.startswith("fail-then-timeout") and attempt == 1:
                gateway.log.write(event="post", answer=500, taken=False, **common)
                self._answer(500)
                return
            if mode.startswith("fail-then-timeout") and attempt == 2:
                # Read, hence taken (a real gateway would send it now), answered too late.
                first = gateway.take(message_id)
                seconds = float(mode.partition(":")[2] or 15)
                gateway.log.write(
                    event="post", answer="late", taken=first, duplicate=not first, **common
                )
                time.sleep(seconds)
                delivered = self._answer(200)
                gateway.log.write(event="late_answer", id=message_id, reached_portal=delivered)
                return
            first = gateway.take(message_id)
            gateway.log.write(event="post", answer=200, taken=first, duplicate=not first, **common)
            self._answer(200)

    return Handler


def run_sms(port: int, log_path: Path, mode_file: Path | None) -> None:
    log = JsonLog(log_path)
    gateway = SmsGateway(log, os.environ.get("SMS_SINK_SECRET", ""), mode_file)
    server = ThreadingHTTPServer(("127.0.0.1", port), sms_handler(gateway))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    signal.signal(signal.SIGINT, lambda *_: threading.Thread(target=server.shutdown).start())
    log.write(event="started", port=port, pid=os.getpid())
    print(f"sms sink on 127.0.0.1:{port}", flush=True)
    server.serve_forever()
    log.write(event="stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["smtp", "sms"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--slow-file", type=Path)
    parser.add_argument("--mode-file", type=Path)
    args = parser.parse_args(argv)
    if args.kind == "smtp":
        run_smtp(args.port, args.log, args.slow_file)
    else:
        run_sms(args.port, args.log, args.mode_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
