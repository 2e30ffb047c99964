"""Messaging nodes: MQTT (``ctrl.mqtt()``), NATS (``ctrl.nats()``), AMQP/RabbitMQ (``ctrl.amqp()``).

Every endpoint (an MQTT topic, a NATS subject, an AMQP queue or exchange) is a node:

- ``set(v)`` publishes ``v`` (str, bytes, a number; a dict or list as JSON);
- ``get()`` is the last message received there: the first ``get()`` / ``has_data()`` subscribes,
  ``get()`` answers None until a message arrives, ``has_data()`` turns true when one has, so
  ``wait()`` waits for it;
- ``json()`` / ``raw()`` / ``text()`` are views decoding the payload as JSON, raw bytes or
  UTF-8 text (the default); a payload that does not decode raises
  :class:`RemoteProtocolError` from ``get()`` and leaves the subscription running;
- ``subscribe(callback)`` calls ``callback(value)`` for every message, in order: a sync callback
  in a worker thread, an async one as a Trio task. A callback that raises is logged and
  counted, and delivery goes on. ``async with node.aio_messages() as messages`` gives the raw
  :class:`Message` objects instead.

The clients are asyncio libraries (aiomqtt, nats-py, aio-pika); they run on the shared asyncio
loop of :mod:`._aiobridge`, and nothing asyncio runs on the Trio thread. Each broker node keeps
its connection in a :class:`Link` (lazy connect, capped back-off, observable ``status``); the
libraries' own reconnection is switched off so that the link's status is the truth. When the
connection drops, a keeper task in the Trio loop that opened it marks the link down and, while
there are subscriptions, reconnects with the link's back-off and subscribes again. Operations
have the node's ``timeout`` (DeviceTimeout); a broker that cannot be reached gives
DeviceConnectionError.

The package: ``_message`` (messages, payloads, subscriptions and streams), ``_broker`` (the
broker and endpoint base classes), and one module per broker: ``mqtt``, ``nats``, ``amqp``.
None of them imports a broker library until a connection is made.
"""

from ._broker import BrokerNode, MessageNode
from ._message import Codec, Message, MessageStream, Subscription, encode_payload
from .amqp import AmqpExchangeNode, AmqpNode, AmqpQueueNode
from .mqtt import MqttNode, MqttTopicNode
from .nats import NatsNode, NatsSubjectNode

__all__ = [
    "AmqpExchangeNode",
    "AmqpNode",
    "AmqpQueueNode",
    "BrokerNode",
    "Codec",
    "Message",
    "MessageNode",
    "MessageStream",
    "MqttNode",
    "MqttTopicNode",
    "NatsNode",
    "NatsSubjectNode",
    "Subscription",
    "encode_payload",
]
