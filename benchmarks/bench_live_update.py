"""Live updates: from an order fill committed by the worker process to the new state visible in Chromium.

    .venv/bin/python benchmarks/bench_live_update.py [--fills 200] [--clients 1 200] [--redis-db 9]

On Postgres (a throw-away database on ``--admin-url``, dropped at the end) and
Redis (``redis://127.0.0.1:6379/<--redis-db>``, flushed before and after), it
starts the real app (``reflex run --env prod``, as the browser tests do: with
Redis that is several backend workers sharing state through Redis), opens
Chromium pages on the Orders page signed in as a follower, and starts a
SEPARATE worker process (this script with ``--worker``).  For each fill the
worker ingests a Discord signal through ``services.trading`` (the bot's
path: fan-out, risk decision, paper venue, fill, commit, bus publish), and
records when the fill's transaction's COMMIT returned (``time.time()``
right after the driver's commit).  Each page records, with a
MutationObserver, when the order's row first shows ``data-status="filled"``
(``Date.now()``: the same wall clock, same machine).  Latency = seen - committed.

Fills are sent one at a time: the next once every client has seen the
previous one (or 20 s passed), plus ``--gap``.  All clients are the same
follower (one sign-in cookie), each its own Reflex client (own token, own
state, own websocket, own live task and bus subscription), so each fill is
one reload per client on the server: the same push work as a signal
reaching as many followers at once.  ``--clients 1 200`` measures with 1
client, then opens the rest and measures again.  Of the clients, at most
``--tabs`` (default 1) are Chromium tabs; the others are raw websocket
clients (``RawClient``: they replay the first tab's socket.io handshake with
a fresh token and record when a delta lists the order as filled, i.e.
received, not rendered).  ``--tabs 200`` opens 200 real tabs: on a 2-core
machine that measures mostly the renderers' contention.  Target: p95 < 100 ms.

``--audience others``: the clients beyond the Chromium tabs are signed in as
OTHER members (one session each) with their own Orders page open and no
fills of their own: 200 connected clients, each fill pushed only to the
member it belongs to.  ``--audience same`` (the default) is the fan-out
worst case above: every client is the member whose order fills.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SESSION_SECRET = "bench-live-session-secret-not-for-production"
TAG = "live"
# React reuses the <tr> nodes of a full table: a new order at the top can arrive as changed attributes
# of existing rows, not as added nodes, hence data-order-id in the attribute filter.
OBSERVER = """
(() => {
  const seen = new Set();
  const scan = () => {
    const t = Date.now();
    for (const row of document.querySelectorAll('tr[data-status="filled"][data-order-id]')) {
      const id = row.getAttribute('data-order-id');
      if (!seen.has(id)) { seen.add(id); window.__liveSeen(id, t); }
    }
  };
  new MutationObserver(scan).observe(document, {subtree: true, childList: true, attributes: true,
                                                attributeFilter: ["data-status", "data-order-id"]});
})();
"""


# ----------------------------------------------------------------------------- the worker process
async def worker(channel_id: str, account_id: int) -> None:
    """Read ``<n>`` lines on stdin; for each, one signal -> one fill; answer a JSON line on stdout."""
    import sqlalchemy as sa  # noqa: F401

    import backend.events as events
    from backend.brokers.paper import PaperBroker
    from backend.db.session import get_engine
    from backend.execution.adapters import Adapters
    from backend.services import trading

    engine = get_engine()
    last_commit = [0.0]
    dialect, do_commit = engine.dialect, engine.dialect.do_commit

    def timed_commit(dbapi_connection) -> None:
        do_commit(dbapi_connection)
        last_commit[0] = time.time()

    dialect.do_commit = timed_commit
    fills: list[tuple[int, float]] = []
    publish = events.publish_to_user

    def recording_publish(user_id: int, event: dict) -> None:
        order = event.get("order") or {}
        if event.get("type") == "order.updated" and order.get("status") == "filled":
            fills.append((order["id"], last_commit[0]))  # published right after its commit
        publish(user_id, event)

    events.publish_to_user = recording_publish
    await PaperBroker(engine, account_id).set_quote("AAPL", __import__("decimal").Decimal("100"))
    adapters = Adapters(engine)
    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": True}), flush=True)
    while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
        n = int(line)
        fills.clear()
        started = time.perf_counter()
        result = await trading.ingest_discord_message(
            channel_id=channel_id, message_id=f"{TAG}-{n}", content="Buy AAPL" if n % 2 == 0 else "Sell AAPL",
            sent_at=None, adapters=adapters)
        print(json.dumps({"n": n, "fills": fills, "ingest_ms": (time.perf_counter() - started) * 1000,
                          "result": result}, default=str), flush=True)
    await adapters.aclose()


# ----------------------------------------------------------------------------- the browser side
class Pages:
    """Chromium tabs on the Orders page; ``seen[order_id][tab]`` = when the tab showed it filled."""

    def __init__(self, context, base: str, cookie_name: str, session_token: str) -> None:
        self.context, self.base = context, base
        self.cookie_name, self.session_token = cookie_name, session_token  # the tabs' member
        self.tabs: list = []
        self.raw: list[RawClient] = []
        self.seen: dict[int, dict[object, float]] = {}
        self.waiting: dict[int, asyncio.Event] = {}
        self.bystanders = 0  # raw clients of other members: they are not expected to see the fills
        self.leaks = 0       # filled rows a bystander received: must stay 0
        self.loaded: set = set()  # bystanders whose own (signed-in) Orders page arrived
        self.ws_url = ""
        self.ws_connect = ""  # the CONNECT packet (its auth carries the hydrate event) the first tab sent

    @property
    def clients(self) -> int:
        return len(self.tabs) + len(self.raw)

    @property
    def audience(self) -> int:
        """The clients each fill must reach (the filling member's own)."""
        return self.clients - self.bystanders

    def record(self, key: object, order_id: int, t: float) -> None:
        got = self.seen.setdefault(order_id, {})
        got.setdefault(key, t)
        event = self.waiting.get(order_id)
        if event is not None and len(got) >= self.audience:
            event.set()

    async def install(self) -> None:
        await self.context.expose_binding("__liveSeen", self._seen)
        await self.context.add_init_script(OBSERVER)

    def _seen(self, source, order_id: str, t_ms: float) -> None:
        tab = self.tabs.index(source["page"]) if source["page"] in self.tabs else -1
        self.record(tab, int(order_id), t_ms / 1000)

    def _capture(self, ws) -> None:
        if not self.ws_url:
            self.ws_url = ws.url
            ws.on("framesent", self._first_connect)

    def _first_connect(self, payload) -> None:
        text = payload if isinstance(payload, str) else payload.decode()
        if not self.ws_connect and text.startswith("40/_event,"):
            self.ws_connect = text

    async def open(self, count: int) -> None:
        while len(self.tabs) < count:
            page = await self.context.new_page()
            if not self.tabs:
                page.on("websocket", self._capture)
            self.tabs.append(page)
            await page.goto(self.base + "/trader/orders/")
            shown = page.locator("#orders-history").or_(page.get_by_text("No orders match these filters."))
            await shown.first.wait_for(timeout=120_000)

    async def open_raw(self, count: int, tokens: list[str], *, bystanders: bool = False) -> None:
        """``count`` more clients that speak Reflex's websocket protocol themselves (no browser), the
        n-th signed in with the session ``tokens[n % len(tokens)]``; ``bystanders``: other members'."""
        for _ in range(100):  # Playwright reports the first tab's frames asynchronously
            if count == 0 or (self.ws_url and self.ws_connect):
                break
            await asyncio.sleep(0.1)
        if count and not (self.ws_url and self.ws_connect):
            raise RuntimeError("the first tab's websocket handshake was not captured")
        opened = 0
        while opened < count:
            client = RawClient(self, len(self.raw), tokens[len(self.raw) % len(tokens)], bystander=bystanders)
            self.raw.append(client)
            await client.start()
            opened += 1
            self.bystanders += bystanders

    async def wait_for(self, order_id: int, timeout: float) -> bool:
        event = self.waiting.setdefault(order_id, asyncio.Event())
        if len(self.seen.get(order_id, {})) >= self.audience:
            return True
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False


class RawClient:
    """One more open Orders page without a browser: replays the first tab's socket.io handshake with a
    fresh client token (so it is a client of its own: own state, own live task, own bus subscription),
    answers pings, and records when a delta first lists an order as filled (received, not rendered)."""

    def __init__(self, pages: Pages, index: int, session_token: str, *, bystander: bool = False) -> None:
        self.pages, self.key, self.session_token = pages, ("raw", index), session_token
        self.bystander = bystander
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        import urllib.parse

        import websockets

        old = urllib.parse.parse_qs(urllib.parse.urlsplit(self.pages.ws_url).query)["token"][0]
        token = str(uuid.uuid4())
        url = self.pages.ws_url.replace(old, token)
        connect = self.pages.ws_connect.replace(old, token)
        if self.session_token != self.pages.session_token:
            # The replayed handshake carries the tab's cookies (Reflex sends them in the hydrate
            # event): this client signs in as its own member only if its token goes there too.
            if self.pages.session_token not in connect:
                raise RuntimeError("the session cookie is not in the captured handshake: cannot sign in as another member")
            connect = connect.replace(self.pages.session_token, self.session_token)
        cookie = f"{self.pages.cookie_name}={self.session_token}"
        self.ws = await websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": self.pages.base},
                                           max_size=None, ping_interval=None)
        self.task = asyncio.create_task(self._run(connect))

    async def _run(self, connect: str) -> None:
        async for message in self.ws:
            t = time.time()
            if message.startswith("0{"):
                await self.ws.send(connect)
            elif message == "2":
                await self.ws.send("3")
            elif message.startswith("42/_event,") and "rows_rx_state_" in message:
                _name, update = json.loads(message[len("42/_event,"):])
                for substate in update.get("delta", {}).values():
                    if self.bystander and "rows_rx_state_" in substate:
                        self.pages.loaded.add(self.key)  # its member's own Orders page reached it
                    for row in substate.get("rows_rx_state_", []):
                        if row.get("status") == "filled" and self.bystander:
                            self.pages.leaks += 1  # another member's order on this member's page
                        elif row.get("status") == "filled":
                            self.pages.record(self.key, int(row["id"]), t)

    async def close(self) -> None:
        if self.task:
            self.task.cancel()
        await self.ws.close()


class Worker:
    def __init__(self, proc) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, env: dict[str, str], channel_id: str, account_id: int) -> "Worker":
        proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--worker", channel_id, str(account_id), cwd=ROOT, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        self = cls(proc)
        assert (await self._answer()).get("ready")
        return self

    async def _answer(self) -> dict:
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 120)
            if not line:
                raise RuntimeError(f"the worker process exited ({await self.proc.wait()})")
            if line.startswith(b"{"):
                return json.loads(line)

    async def fill(self, n: int) -> dict:
        self.proc.stdin.write(f"{n}\n".encode())
        await self.proc.stdin.drain()
        return await self._answer()

    async def stop(self) -> None:
        self.proc.stdin.write(b"\n")
        await self.proc.stdin.drain()
        await asyncio.wait_for(self.proc.wait(), 30)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def measure(pages: Pages, worker: Worker, fills: int, start_n: int, gap: float) -> dict:
    """Per fill: latency on each Chromium tab, on each raw client, and on the slowest client of all."""
    tabs, raw, slowest, ingest, missing = [], [], [], [], 0
    for n in range(start_n, start_n + fills):
        answer = await worker.fill(n)
        if len(answer["fills"]) != 1:
            raise RuntimeError(f"signal {n} gave {len(answer['fills'])} fills, expected 1: {answer['result']}")
        order_id, committed = answer["fills"][0]
        ingest.append(answer["ingest_ms"])
        if not await pages.wait_for(order_id, 20):
            lost = pages.audience - len(pages.seen.get(order_id, {}))
            missing += lost
            print(f"   fill {n} (order {order_id}) not seen by {lost} client(s) within 20 s", flush=True)
        got = pages.seen.get(order_id, {})
        tabs.extend((t - committed) * 1000 for key, t in got.items() if isinstance(key, int))
        raw.extend((t - committed) * 1000 for key, t in got.items() if not isinstance(key, int))
        if len(got) == pages.audience:
            slowest.append(max((t - committed) * 1000 for t in got.values()))
        if fills >= 50 and (n - start_n + 1) % 50 == 0:
            print(f"   [{n - start_n + 1}/{fills} fills]", flush=True)
        await asyncio.sleep(gap)
    return {"tabs": tabs, "raw": raw, "slowest": slowest, "ingest": ingest, "missing": missing}


def line(label: str, values: list[float]) -> str:
    return (f"   {label}: p50 {pct(values, 50):7.1f} ms   p95 {pct(values, 95):7.1f} ms   max {max(values):7.1f} ms"
            f"   ({len(values)} samples)")


def report(pages: Pages, fills: int, r: dict) -> None:
    others = f", {pages.bystanders} of them other members' pages" if pages.bystanders else ""
    print(f"clients={pages.clients:>3} ({len(pages.tabs)} Chromium tab(s), {len(pages.raw)} raw websocket client(s)"
          f"{others}): {fills} fills, {r['missing']} client updates not seen within 20 s"
          + (f"; other members' pages loaded signed in: {len(pages.loaded)}/{pages.bystanders}, the follower's "
             f"fills received by them: {pages.leaks} (must be 0)" if pages.bystanders else ""))
    if r["tabs"]:
        print(line("commit -> visible in Chromium (target p95 < 100 ms)", r["tabs"]))
    if r["raw"]:
        print(line("commit -> delta received by raw clients        ", r["raw"]))
    if pages.audience > 1 and r["slowest"]:
        print(line("commit -> on the LAST client of each fill       ", r["slowest"]))
    print(f"   worker: signal -> fill committed (ingest call) p50 {pct(r['ingest'], 50):.1f} ms", flush=True)


async def bench(args, env: dict[str, str], base: str, world) -> None:
    from playwright.async_api import async_playwright

    from app_process import CHROMIUM, CHROMIUM_ARGS
    from backend.services import auth
    from backend.services.auth import COOKIE_NAME

    import sqlalchemy as sa
    from sqlmodel import Session

    engine = sa.create_engine(env["DATABASE_URL"])
    with Session(engine) as s:
        token = auth.create_session(s, world["follower_id"])
        others = [auth.create_session(s, user_id) for user_id in world["others"]]
        s.commit()
    engine.dispose()
    flags = CHROMIUM_ARGS + ["--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                             "--disable-backgrounding-occluded-windows", f"--renderer-process-limit={args.renderers}"]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        await context.add_cookies([{"name": COOKIE_NAME, "value": token, "url": base}])
        pages = Pages(context, base, COOKIE_NAME, token)
        await pages.install()
        worker = await Worker.start(env, world["channel_id"], world["account_id"])
        n = 0
        try:
            for clients in args.clients:
                t0 = time.monotonic()
                tabs = min(clients, args.tabs)
                await pages.open(tabs)
                if args.audience == "same":
                    await pages.open_raw(clients - tabs - len(pages.raw), [token])
                else:
                    await pages.open_raw(clients - tabs - len(pages.raw), others, bystanders=True)
                print(f"[{pages.clients} client(s) open after {time.monotonic() - t0:.0f} s]", flush=True)
                await measure(pages, worker, args.warmup, n, args.gap)  # every client subscribed and warm
                n += args.warmup
                results = await measure(pages, worker, args.fills, n, args.gap)
                n += args.fills
                report(pages, args.fills, results)
        finally:
            await worker.stop()
            for client in pages.raw:
                await client.close()
            await browser.close()


def seed(url: str, others: int) -> dict:
    """The follower whose orders fill, and ``others`` members of the community who follow no one."""
    import sqlalchemy as sa
    from sqlmodel import Session

    from backend.db.models import Membership, User
    from backend.execution.seeding import seed_world

    engine = sa.create_engine(url)
    with Session(engine, expire_on_commit=False) as s:
        world = seed_world(s, followers=1, tag=TAG)
        members = [User(username=f"{TAG}-member{i}", discord_id=f"{TAG}-m{i}") for i in range(others)]
        s.add_all(members)
        s.flush()
        s.add_all([Membership(community_id=world.community.id, user_id=u.id) for u in members])
        s.commit()
    engine.dispose()
    return {"follower_id": world.followers[0].id, "account_id": world.accounts[0].id,
            "channel_id": world.source.discord_channel_id, "others": [u.id for u in members]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=200)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 200])
    parser.add_argument("--tabs", type=int, default=1,
                        help="at most this many clients are Chromium tabs; the others are raw websocket clients")
    parser.add_argument("--warmup", type=int, default=4, help="fills before each measurement, not counted")
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between one fill seen and the next")
    parser.add_argument("--renderers", type=int, default=4, help="Chromium renderer processes for the tabs")
    parser.add_argument("--audience", choices=["same", "others"], default="same",
                        help="same: every client is the filling member's (fan-out); others: other members' pages")
    parser.add_argument("--redis-db", type=int, default=9)
    parser.add_argument("--admin-url", default=os.environ.get("TEST_POSTGRES_URL", ADMIN_URL))
    parser.add_argument("--worker", nargs=2, metavar=("CHANNEL", "ACCOUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(args.worker[0], int(args.worker[1])))
        return

    import redis
    import sqlalchemy as sa

    from app_process import ARTIFACTS, app_env, free_port, prepare_database, start, stop, wait_until_up

    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    ARTIFACTS.mkdir(exist_ok=True)
    # It flushes its Redis database and builds the app in .web: a second copy running beside it would wipe
    # the first one's Reflex states (it looks like pushes that hang) and fight over the frontend build.
    guard = open(ARTIFACTS / "bench-live.lock", "w")
    try:
        fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit("another bench_live_update.py is running on this checkout; wait for it to finish")
    admin = sa.create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    name = f"dte_bench_live_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    db_url = sa.engine.make_url(args.admin_url).set(database=name).render_as_string(hide_password=False)
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    port = free_port()
    env = app_env(Path(tempfile.mkdtemp(prefix="dte-bench-live-")), port, database_url=db_url, redis_url=redis_url)
    env["SESSION_SECRET"] = SESSION_SECRET
    os.environ.update(SESSION_SECRET=SESSION_SECRET, APP_ENV="development", DATABASE_URL=db_url)
    log_path = ARTIFACTS / "bench-live-app.log"
    proc = None
    try:
        prepare_database(env, demo=False)
        world = seed(db_url, max(args.clients) if args.audience == "others" else 0)
        proc = start(env, port, log_path)
        base = f"http://localhost:{port}"
        t0 = time.monotonic()
        wait_until_up(base, proc, log_path, 900)
        print(f"app up after {time.monotonic() - t0:.0f} s: reflex run --env prod on Postgres + Redis "
              f"(db {args.redis_db}); orders page; one fill at a time", flush=True)
        asyncio.run(bench(args, env, base, world))
    finally:
        if proc is not None:
            stop(proc)
        r.flushdb()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
