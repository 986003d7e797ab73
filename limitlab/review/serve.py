"""Running the review app: a socket bound first (so ``port 0`` gives a free port and the URL can be
printed before serving), uvicorn on it, in the foreground or in a thread (tests, notebooks)."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import sys
import threading

from ..errors import LimitlabError

INSTALL = "the review page needs Starlette and uvicorn: pip install 'limitlab[review]'"


def require_web() -> None:
    """Raise the one-sentence install hint when the ``review`` extra is missing."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise LimitlabError(INSTALL) from None


def is_loopback(host: str) -> bool:
    """Whether ``host`` only reaches this machine (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0: a free port), or a one-sentence error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise LimitlabError(f"cannot listen on {host}:{port} ({e.strerror}); choose another --port (0 = any free one)") \
            from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def allowed_hosts(host: str) -> tuple:
    """Host names the Host header may carry: the loopback names and the bound address; for a wildcard
    bind (0.0.0.0, ::) also this machine's name and addresses, which other machines reach it by."""
    names = ["127.0.0.1", "localhost", "[::1]", "::1", host]
    if host in ("0.0.0.0", "::", ""):
        try:
            name, aliases, addresses = socket.gethostbyname_ex(socket.gethostname())
            names += [name, socket.getfqdn(), *aliases, *addresses]
        except OSError:
            pass
    return tuple(dict.fromkeys(n.lower() for n in names if n))


class Server:
    """A review app listening on ``host:port``: ``url`` (with the token), ``run()`` blocks until
    stopped (Ctrl+C, or :meth:`stop`, e.g. from the Done button), ``start()`` runs it in a thread."""

    def __init__(self, review, host: str = "127.0.0.1", port: int = 0, title: str = "", with_done: bool = False,
                 token: str | None = None):
        require_web()
        import uvicorn

        from .server import build_app

        self.sock = bind(host, port)
        self.port = self.sock.getsockname()[1]
        self.host = host
        self.token = token or secrets.token_urlsafe(24)
        self.done = threading.Event()
        app = build_app(review, self.token, allowed_hosts(host), on_done=self.stop if with_done else None,
                        title=title)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._uvicorn = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address with the token, to open once."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/?token={self.token}"

    def stop(self) -> None:
        """Ask the server to finish (it returns from :meth:`run` shortly)."""
        self.done.set()
        self._uvicorn.should_exit = True

    def run(self) -> None:
        """Serve until stopped (Ctrl+C in the main thread, or :meth:`stop`)."""
        try:
            self._uvicorn.run(sockets=[self.sock])
        finally:
            self.sock.close()

    def start(self) -> "Server":
        """Serve in a background thread; returns once the server accepts requests."""
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        while not self._uvicorn.started and self._thread.is_alive():
            self._thread.join(0.02)
        return self

    def join(self, timeout: float | None = None) -> None:
        """Wait for the background thread of :meth:`start` to end."""
        if self._thread is not None:
            self._thread.join(timeout)


def announce(server: Server, open_browser: bool) -> None:
    """Print the URL (and a warning when not on loopback); open a browser on it if asked."""
    print(f"review: open {server.url}  (Ctrl+C stops; decisions are saved as you make them)", flush=True)
    if not is_loopback(server.host):
        print(f"review: warning: listening on {server.host}, reachable from other machines; anyone with the URL "
              "can change the decisions", file=sys.stderr, flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(server.url.replace("0.0.0.0", "127.0.0.1"))
