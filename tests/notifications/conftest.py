"""Fixtures of the notification tests: a real HTTP SMS gateway on loopback (`http.server`
in a thread), for the webhook backend."""

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Gateway:
    url: str = ""
    received: list[dict] = field(default_factory=list)
    # What to answer to the next requests, in order: (status, seconds to wait first).
    replies: list[tuple[int, float]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def _handler(gateway: Gateway):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            gateway.received.append({"path": self.path, "headers": self.headers, "body": body})
            status, wait = gateway.replies.pop(0) if gateway.replies else (200, 0)
            if wait:
                gateway.release.wait(wait)  # the portal gives up before
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
            except OSError:
                pass  # the portal hung up (timeout)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def sms_gateway(settings):
    gateway = Gateway()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(gateway))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    gateway.url = f"http://127.0.0.1:{server.server_port}/sms"
    settings.SMS_BACKEND = "webhook"
    settings.SMS_WEBHOOK_URL = gateway.url
    settings.SMS_WEBHOOK_SECRET = "gateway-shared-key"
    settings.SMS_WEBHOOK_TIMEOUT = 0.5
    yield gateway
    gateway.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)
