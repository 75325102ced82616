"""Shared test fixtures."""

import http.server
import threading

import pytest
import torch


@pytest.fixture
def one_thread():
    """Small recurrent and complex ops are dominated by threading overhead on busy cores: run
    the test on one torch thread, and restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class LocalServer:
    """Serves ``routes[path] = body`` on 127.0.0.1; ``cut[path] = n`` sends only n bytes of it
    while promising all of them (an interrupted transfer). Records the paths asked for."""

    def __init__(self):
        self.routes: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:server.cut.get(self.path, len(body))])
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def serve(self, path: str, body: bytes) -> str:
        self.routes[path] = body
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    """A local server, with downloads allowed (PAPERNOTES_OFFLINE unset whether or not the
    caller's environment set it) and no proxy in the way of 127.0.0.1."""
    monkeypatch.delenv("PAPERNOTES_OFFLINE", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = LocalServer()
    yield srv
    srv.close()
