"""Django's Redis cache, keeping one client per connection pool and one reading connection.

Django's RedisCacheClient builds a new `redis.Redis` for every cache call (its pool is
reused): on the participant path that is one client per request for the throttle's read,
and building one (its table of ~170 response callbacks) cost a tenth of a millisecond of CPU
per request. A client is thread-safe and only holds its pool, so one per pool is kept on the
cache client, itself one per cache backend instance (Django keeps one per thread).

`get` (the throttle's read on every participant request) goes further: it sends GET on a
connection of the cache client's own and reads the reply, without redis-py's command
machinery (a client, the pool's checkout with its readability probe, the retry wrapper, the
release event), which cost about three times the round trip's own CPU (bench/README.md,
"Load"). The backend instance belongs to one thread, so its connection does too; a forked
worker opens its own. The socket timeouts are the pool's (settings.CACHES OPTIONS), so a
hung Redis still costs a request at most one timeout, and any error still reaches the
caller (the throttles fail open). A connection that the server closed since its last use
(a Redis restart, an idle timeout) is reopened once; a timeout is not retried. Writes and
every other command keep redis-py's pool.
"""

import os
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class ReusingRedisCacheClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}
        self._readers: dict[int, tuple[int, Any]] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = super().get_client(key, write=write)
        return client

    def get(self, key: Any, default: Any) -> Any:
        value = self._read(key)
        if value is None:
            return default
        return self._serializer.loads(value)  # type: ignore[attr-defined]

    def _reader(self) -> Any:
        index = self._get_connection_pool_index(False)  # type: ignore[attr-defined]
        pid = os.getpid()
        held = self._readers.get(index)
        if held is None or held[0] != pid:  # none yet, or inherited across a fork
            pool = self._get_connection_pool(False)  # type: ignore[attr-defined]
            held = self._readers[index] = (pid, pool.connection_class(**pool.connection_kwargs))
        return held[1]

    def _read(self, key: Any) -> Any:
        conn = self._reader()
        for attempt in (1, 2):
            try:
                conn.send_command("GET", key)
                return conn.read_response()
            except self._lib.ConnectionError:  # type: ignore[attr-defined]
                conn.disconnect()
                if attempt == 2:
                    raise
            except BaseException:
                conn.disconnect()  # a timeout or a half-read reply: start afresh next time
                raise
        raise AssertionError("unreachable")  # pragma: no cover


class ReusingRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusingRedisCacheClient
