"""MQTT: the publisher session (``publisher``), topic and payload shapes (``topics``), the durable
outbox (``outbox``), PUBACK tracking (``acks``) and the relay from the store's outbox to the
broker (``relay``)."""
