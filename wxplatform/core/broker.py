"""kombu's Redis transport, with a lost connection that cannot kill the worker.

celery 5.7.0 handles a lost broker connection (`Consumer.on_connection_error_after_connected`) by first
collecting the connection, which detaches kombu's transport from it (`transport.client = None`), and then
closing it. Anything that still uses one of its channels afterwards (the close's
`QoS.restore_unacked_once()` with a task in flight, that task's ack or reject when it finishes) builds a
Redis connection from the transport's client, and fails with
`AttributeError: 'NoneType' object has no attribute 'hostname'`: not a connection error, so nothing
ignores it and the worker stops with "Unrecoverable error" (2 of 2 Redis blips with a task in flight; an
idle worker has nothing to restore or acknowledge and reconnects). The same family upstream: celery#9250,
kombu#582.

Here such a channel raises the connection error it is (redis ConnectionError), which celery and kombu
already ignore on those paths ("Couldn't ack …"), and the consumer reconnects. Nothing is lost: with the
Redis transport an unacknowledged message is kept in Redis (the unacked index) and handed out again after
the visibility timeout.

A second fault of the same kind: kombu's Redis QoS forgets a message it delivered only once Redis has
confirmed the ack (or reject). When the ack fails (Redis silent, the host cut off from it) the message stays
counted against the prefetch limit for the life of the channel, and the consumer takes nothing more once
`concurrency` acks have failed, although it reconnects, answers broadcasts and looks alive (found by
tests/cluster/test_node_cut_off.py). Here a failed ack still frees its slot and raises as before; the
message stays in Redis's unacked index, so it is handed out again after the visibility timeout (tasks are
safe to run twice).

Both are tested by tests/chaos/test_redis_blip_task_in_flight.py; drop this module once the pinned kombu or
celery passes those tests without it.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from redis.exceptions import ConnectionError as RedisConnectionError

from wxplatform.core.redis_client import FollowingConnection


class QoS(kombu_redis.QoS):
    def ack(self, delivery_tag: str) -> None:
        try:
            super().ack(delivery_tag)
        except Exception:
            self._forget(delivery_tag)
            raise

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)
        except Exception:
            self._forget(delivery_tag)
            raise

    def _forget(self, delivery_tag: str) -> None:
        """The channel's own record of the delivery dropped (what kombu does after Redis confirmed), Redis's kept."""
        virtual.QoS.ack(self, delivery_tag)


class Channel(kombu_redis.Channel):
    QoS = QoS

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the broker connection this channel belonged to was closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]  # kombu has no stubs for it


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """kombu's Sentinel channel (settings.REDIS_SENTINELS) with the same guard, on connections that follow the
    master when the sentinels move it (redis_client.FollowingConnection: without it, after SENTINEL FAILOVER the
    worker went on consuming from and publishing to the old master until it was demoted, ~10 s later)."""

    connection_class = FollowingConnection


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel
