"""Tools for development and tests, not for production: the demo and its traffic, the embedded
Kafka-compatible broker, worker process control, and the fault-injection switches the fault tests
flip in real processes (``faults``: unset in production, so nothing is injected)."""
