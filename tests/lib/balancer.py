"""A round-robin TCP load balancer on a loopback port, for tests that put several engine
replicas behind one URL the way a Kubernetes Service does (kube-proxy picks a ready endpoint per
connection; `sessionAffinity: None`).

Each accepted connection goes to the next backend in turn; a backend that refuses the connection
(stopped, killed) is skipped and the next one tried, so clients only see a failure when every
backend is down (the connection is then closed at once, as a Service without ready endpoints
does). Bytes are copied both ways until either side closes. `connections[port]` counts the
connections each backend took.
"""
import itertools
import socket
import threading


class TcpBalancer:
    def __init__(self, backends, connect_timeout=1.0):
        """`backends`: backend ports on 127.0.0.1 (a list; set_backends() replaces it)."""
        self.backends = list(backends)
        self.connect_timeout = connect_timeout
        self.connections = {}
        self.lock = threading.Lock()
        self.turn = itertools.count()
        self.stopping = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def set_backends(self, backends):
        with self.lock:
            self.backends = list(backends)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _connect(self):
        with self.lock:
            backends = list(self.backends)
        start = next(self.turn)
        for i in range(len(backends)):
            port = backends[(start + i) % len(backends)]
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=self.connect_timeout)
            except OSError:
                continue
            upstream.settimeout(None)
            with self.lock:
                self.connections[port] = self.connections.get(port, 0) + 1
            return upstream
        return None

    def _serve(self, client):
        upstream = self._connect()
        if upstream is None:
            client.close()
            return
        done = threading.Event()

        def pipe(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                # Half-close towards dst; the other direction ends on its own.
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                if done.is_set():
                    src.close()
                    dst.close()
                done.set()

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)
