"""Delivery: the outbox rows every change writes, the queues and lanes that send them, and long texts in
parts.
Nothing leaves the core another way."""
