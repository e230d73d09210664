"""Where a 304's CPU goes: the HTTP client stack, and planet's own work around it.

Three measurements in this process, each ``--rounds`` times over ``--feeds`` conditional
GETs that all answer 304, up to ``--concurrency`` at once, CPU per 304 printed as the
median of the rounds::

    .venv/bin/python benchmarks/cost304.py            # 1000 feeds over 50 hosts, ~10 s

- ``agent``: Twisted's ``Agent`` over a persistent ``HTTPConnectionPool``, the body read
  with ``readBody``, against ``farm.py`` on loopback (latency 0). Twisted's HTTP/1.1
  client alone: the floor of any client built on it.
- ``treq``: planet's own treq client (``httpclient.make_client``: the capped-head
  protocol, the endpoint and URL caches, the guard off) sending planet's request headers,
  the body read with ``treq.content``. What treq's ``HTTPClient.request`` adds on top
  (its cookie, content-decoding and response wrappers).
- ``planet``: the daemon as ``service.build_service`` makes it, every feed refreshed as
  SIGUSR1 does, with a client that answers 304 at once without a socket (on the next
  reactor turn). What planet itself does per fetch: schedule, semaphores, timeout,
  headers read, state update, store, metrics, the fetch log line. Measured at
  ``log_level`` INFO (one line per fetch to a text file, as under ``twistd``) and WARNING.

A cycle of 304s costs roughly ``treq`` + ``planet`` per feed on the reactor thread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from benchutil import cycle_ends  # noqa: E402
from cycle304 import with_farm, write_config  # noqa: E402

Round = Callable[[], Awaitable[None]]


def validators(urls: list[str]) -> dict[str, str]:
    """Each feed's ETag, from one plain GET (the farm answers 304 to it afterwards)."""
    import urllib.request

    etags = {}
    for url in urls:
        with urllib.request.urlopen(url, timeout=30) as response:
            response.read()
            etags[url] = response.headers["ETag"]
    return etags


async def cpu_per_call(reactor: Any, rounds: int, count: int, once: Round) -> list[float]:
    """Microseconds of this process's CPU per call of ``once``'s ``count``, each round."""
    from twisted.internet.task import deferLater

    figures = []
    for _ in range(rounds):
        await deferLater(reactor, 0.2)  # the last round's stragglers (pool, timers) done
        cpu = time.process_time()
        await once()
        figures.append((time.process_time() - cpu) / count * 1e6)
    return figures


def gathered(limit: int, urls: list[str], one: Callable[[str], Awaitable[None]]) -> Round:
    from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults

    async def run() -> None:
        semaphore = DeferredSemaphore(limit)
        await gatherResults(
            [semaphore.run(lambda u=u: Deferred.fromCoroutine(one(u))) for u in urls]
        )

    return run


def client_rounds(reactor: Any, args: argparse.Namespace, urls: list[str]) -> dict[str, Round]:
    """The ``agent`` and ``treq`` rounds, against the farm."""
    import treq
    from twisted.web.client import Agent, HTTPConnectionPool, readBody
    from twisted.web.http_headers import Headers

    from planet.fetch import _ACCEPT
    from planet.httpclient import make_client

    etags = validators(urls)
    agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=True))
    client, _pool = make_client(reactor)
    user_agent = "planet-benchmark"

    async def by_agent(url: str) -> None:
        headers = Headers(
            {"User-Agent": [user_agent], "Accept": [_ACCEPT], "If-None-Match": [etags[url]]}
        )
        response = await agent.request(b"GET", url.encode("ascii"), headers)
        assert response.code == 304, response.code
        await readBody(response)

    async def by_treq(url: str) -> None:
        headers = {"User-Agent": user_agent, "Accept": _ACCEPT, "If-None-Match": etags[url]}
        response = await client.get(url, headers=headers, allow_redirects=False, unbuffered=True)
        assert response.code == 304, response.code
        await treq.content(response)

    return {
        "agent": gathered(args.concurrency, urls, by_agent),
        "treq": gathered(args.concurrency, urls, by_treq),
    }


class _NotModified:
    """A response as treq hands one over: 304, no body."""

    code = 304
    phrase = b"Not Modified"
    length = 0
    version = (b"HTTP", 1, 1)

    def __init__(self) -> None:
        from twisted.web.http_headers import Headers

        self.headers = Headers({b"date": [b"Sun, 06 Dec 2026 22:00:00 GMT"], b"etag": [b'"1"']})


class _AnswersNotModified:
    """A treq client whose every GET answers 304 on the next reactor turn."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def get(self, url: str, **kwargs: Any) -> Any:
        from twisted.internet.defer import Deferred

        answer: Deferred[_NotModified] = Deferred()
        self.reactor.callLater(0, answer.callback, _NotModified())
        return answer


async def planet_figures(
    reactor: Any, args: argparse.Namespace, urls: list[str], level: str, work: Path
) -> list[float]:
    """CPU per 304 of planet's own work, ``--rounds`` refreshes at ``log_level`` ``level``."""

    from planet.config import load_config
    from planet.service import build_service

    options = argparse.Namespace(
        per_host=args.per_host, max_concurrency=args.concurrency, log_level=level
    )
    # A directory each: a snapshot left by the last run would make every feed not due.
    work = work / level
    work.mkdir()
    path = write_config(work, urls, options)
    service = build_service(
        load_config(str(path)), None, reactor, client=_AnswersNotModified(reactor)
    )
    cycle_over = cycle_ends(service.aggregator)

    async def refresh() -> None:
        over = cycle_over()
        service.refresh()
        await over

    over = cycle_over()
    service.startService()
    await over
    try:
        return await cpu_per_call(reactor, args.rounds, len(urls), refresh)
    finally:
        await service.stopService()


async def measure(reactor: Any, args: argparse.Namespace, work: Path, ready: dict) -> dict:
    from twisted.logger import globalLogBeginner, textFileLogObserver

    log = open(work / "planet.log", "w", encoding="utf-8")  # noqa: SIM115 - open for the run
    globalLogBeginner.beginLoggingTo([textFileLogObserver(log)], redirectStandardIO=False)
    urls = ready["urls"]
    figures: dict[str, list[float]] = {}
    for name, once in client_rounds(reactor, args, urls).items():
        await once()  # connections made, caches filled
        figures[name] = await cpu_per_call(reactor, args.rounds, len(urls), once)
    for level in ("INFO", "WARNING"):
        figures[f"planet {level}"] = await planet_figures(reactor, args, urls, level, work)
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=100, help="requests at once")
    ap.add_argument("--per-host", type=int, default=2, help="planet's per_host_concurrency")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", default=str(HERE / "results" / "cost304.json"))
    args = ap.parse_args(argv)
    # farm.py's own options: 1 entry a feed (the bodies are never parsed), no latency.
    args.entries, args.latency_ms = 1, 0.0

    result = with_farm(args, "cost304-", measure)
    medians = {name: statistics.median(values) for name, values in result.items()}
    print(f"{args.feeds} feeds over {args.hosts} hosts, {args.concurrency} at once, "
          f"median of {args.rounds} rounds, CPU per 304:")  # fmt: skip
    for name, values in result.items():
        low, high = min(values), max(values)
        print(f"  {name:<16} {medians[name]:6.0f} us  ({low:.0f}-{high:.0f})")
    for level in ("INFO", "WARNING"):
        total = medians["treq"] + medians[f"planet {level}"]
        print(f"  treq + planet {level:<7} {total:4.0f} us: a cycle of {args.feeds} 304s "
              f"needs {total * args.feeds / 1e6:.2f} s of CPU")  # fmt: skip
    doc = {"params": vars(args), "us_per_304": result, "medians": medians}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
