"""MQTT: the publisher (``publisher``) and its broker session (``session``), topics and
payload encoding (``topics``), the durable outbox (``outbox``), PUBACK tracking (``acks``) and
the relay from the store's outbox to the broker (``relay``)."""
