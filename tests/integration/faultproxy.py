"""A fault-injecting TCP proxy for the PEER links of a test cluster.

Every member advertises its peer URL as a port of this proxy; the proxy
forwards each connection to the member's real ``--listen-peer-urls`` port.
One asyncio event loop runs in a daemon thread of the test process.

Who is talking
--------------
Each listener knows its destination member (the member whose peer port it
fronts).  The *sender* of a connection is read from its first bytes:

* etcd (rafthttp) sends HTTP requests carrying ``X-Server-From: <hex id>``;
* cairn sends, as the very first line, ``CNPEER/1 cluster=<hex> from=<hex>
  to=<hex>\\n`` and then binary frames;
* anything else (``GET /members`` from a joining member, ``GET /version``,
  probes) is from ``"unknown"``.

The proxy reads until it has a complete first line (CNPEER) or a complete HTTP
header block, at most 16 KiB or 1 s, then decides.  Ids are mapped to member
names with :meth:`FaultProxy.register`; an id nobody registered is kept as
``"id:<hex>"`` (it still can be blocked by that label).

Fault semantics (consistent for every kind of fault)
----------------------------------------------------
* A rule drops the bytes that flow *from* one member *to* another, whatever
  side dialled the TCP connection: on a connection dialled by S to D's
  listener, the S->D bytes (requests, frames) are dropped if ``S->D`` is
  blocked and the D->S bytes (responses, streamed messages) if ``D->S`` is
  blocked.  Blocked bytes are silently discarded (a blackhole: the connection
  stays open and silent), never answered.
* When a rule is added, every existing connection between the two members
  (dialled either way) is closed at once with a reset.
* A connection that has discarded bytes carries a corrupted stream; it is
  reset when the rules are healed.
* ``isolate(m)`` blocks m <-> every other member *and* m <-> "unknown".
* ``delay(ms)`` delays every forwarded chunk by ``ms`` (both directions,
  order preserved), for connections old and new.
"""

import asyncio
import threading
import time

UNKNOWN = "unknown"
PEEK_LIMIT = 16384
PEEK_TIMEOUT = 1.0


def parse_sender(head: bytes):
    """Return the hex id of the sender found in the first bytes, or None."""
    if head.startswith(b"CNPEER/"):
        line = head.split(b"\n", 1)[0].decode("latin-1", "replace").strip()
        for part in line.split()[1:]:
            k, _, v = part.partition("=")
            if k == "from" and v:
                return v.lower()
        return None
    end = head.find(b"\r\n\r\n")
    block = head if end < 0 else head[:end]
    for line in block.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"x-server-from":
            v = v.strip().decode("latin-1", "replace").lower()
            return v or None
    return None


def head_complete(head: bytes):
    """Enough bytes to decide who is talking?"""
    if len(head) < 7 and b"CNPEER/".startswith(head):
        return False                      # could still become a CNPEER line
    if head.startswith(b"CNPEER/"):
        return b"\n" in head
    return b"\r\n\r\n" in head


class _Conn:
    def __init__(self, sender, dest):
        self.sender = sender
        self.dest = dest
        self.writers = []
        self.damaged = False
        self.closed = False

    def involves(self, a, b):
        return {self.sender, self.dest} == {a, b}

    def abort(self):
        if self.closed:
            return
        self.closed = True
        for w in self.writers:
            try:
                w.transport.abort()
            except Exception:  # noqa: BLE001
                pass


class FaultProxy:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._lock = threading.Lock()
        self._blocked = set()        # {(src, dst)} byte flows that are dropped
        self._isolated = set()
        self._delay = 0.0
        self._names = {}             # hex id -> name
        self._conns = set()
        self._servers = {}           # name -> asyncio server
        self.stats = {"connections": 0, "dropped_bytes": 0, "senders": {}}
        self._thread.start()

    # -- lifecycle -----------------------------------------------------------
    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _call(self, coro_or_fn, timeout=10):
        if asyncio.iscoroutine(coro_or_fn):
            return asyncio.run_coroutine_threadsafe(coro_or_fn, self.loop).result(timeout)

        async def wrap():
            return coro_or_fn()
        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(timeout)

    def close(self):
        if not self.loop.is_running():
            return

        async def shutdown():
            for s in self._servers.values():
                s.close()
            for c in list(self._conns):
                c.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            self._call(shutdown())
        except Exception:  # noqa: BLE001
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()

    # -- listeners -----------------------------------------------------------
    def listen(self, name, target_port, port=0):
        """Front ``target_port`` (a member's real peer port) as member ``name``;
        return the proxy's port (the one to advertise)."""
        async def start():
            server = await asyncio.start_server(
                lambda r, w: self._handle(r, w, name, target_port), "127.0.0.1", port)
            self._servers[name] = server
            return server.sockets[0].getsockname()[1]
        return self._call(start())

    def register(self, member_id_hex, name):
        with self._lock:
            self._names[member_id_hex.lower()] = name

    def _label(self, hexid):
        if hexid is None:
            return UNKNOWN
        with self._lock:
            return self._names.get(hexid, "id:" + hexid)

    # -- rules ---------------------------------------------------------------
    def _is_blocked(self, src, dst):
        with self._lock:
            if src == dst:
                return False
            if src in self._isolated or dst in self._isolated:
                return True
            return (src, dst) in self._blocked

    def _close_between(self, pairs=(), members=()):
        async def go():
            for c in list(self._conns):
                if c.sender in members or c.dest in members or \
                        any(c.involves(a, b) for a, b in pairs):
                    c.abort()
        self._call(go())

    def block(self, a, b):
        """Drop both directions between members ``a`` and ``b`` (names)."""
        with self._lock:
            self._blocked |= {(a, b), (b, a)}
        self._close_between(pairs=[(a, b)])

    def block_oneway(self, src, dst):
        """Drop the bytes that flow from ``src`` to ``dst`` (dst -> src still flows)."""
        with self._lock:
            self._blocked.add((src, dst))
        self._close_between(pairs=[(src, dst)])

    def isolate(self, m):
        with self._lock:
            self._isolated.add(m)
        self._close_between(members=[m])

    def heal(self):
        with self._lock:
            self._blocked.clear()
            self._isolated.clear()

        async def go():
            for c in list(self._conns):
                if c.damaged:
                    c.abort()
        self._call(go())

    def delay(self, ms):
        with self._lock:
            self._delay = max(0.0, ms / 1000.0)

    def rules(self):
        with self._lock:
            return {"blocked": sorted(self._blocked), "isolated": sorted(self._isolated),
                    "delay_ms": self._delay * 1000}

    # -- connections -----------------------------------------------------------
    async def _handle(self, creader, cwriter, dest, target_port):
        conn = _Conn(UNKNOWN, dest)
        conn.writers.append(cwriter)
        self._conns.add(conn)
        self.stats["connections"] += 1
        try:
            head = b""
            deadline = time.monotonic() + PEEK_TIMEOUT
            while len(head) < PEEK_LIMIT and not head_complete(head):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    chunk = await asyncio.wait_for(creader.read(PEEK_LIMIT - len(head)), left)
                except asyncio.TimeoutError:
                    break
                if not chunk:
                    break
                head += chunk
            conn.sender = self._label(parse_sender(head))
            with self._lock:
                self.stats["senders"][conn.sender] = self.stats["senders"].get(conn.sender, 0) + 1
            if conn.closed:
                return
            try:
                ureader, uwriter = await asyncio.open_connection("127.0.0.1", target_port)
            except OSError:
                conn.abort()
                return
            conn.writers.append(uwriter)
            if conn.closed:   # a rule was added while we were connecting
                conn.abort()
                return
            up = asyncio.ensure_future(
                self._pump(conn, creader, uwriter, conn.sender, dest, head))
            down = asyncio.ensure_future(self._pump(conn, ureader, cwriter, dest, conn.sender, b""))
            await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
            # One side ended (its EOF was passed on): give the other direction
            # a moment to finish, then close both.
            await asyncio.wait([up, down], timeout=5)
            for t in (up, down):
                t.cancel()
        except Exception:  # noqa: BLE001
            pass
        finally:
            conn.abort()
            self._conns.discard(conn)

    async def _pump(self, conn, reader, writer, src, dst, first):
        queue = asyncio.Queue()

        async def feed():
            if first:
                await queue.put((time.monotonic() + self._delay, first))
            while True:
                data = await reader.read(65536)
                if not data:
                    await queue.put((0, None))
                    return
                await queue.put((time.monotonic() + self._delay, data))

        feeder = asyncio.ensure_future(feed())
        try:
            while True:
                due, data = await queue.get()
                if data is None:
                    try:
                        if writer.can_write_eof():
                            writer.write_eof()
                    except Exception:  # noqa: BLE001
                        pass
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if conn.closed:
                    return
                if self._is_blocked(src, dst):
                    conn.damaged = True
                    self.stats["dropped_bytes"] += len(data)
                    continue
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            feeder.cancel()
