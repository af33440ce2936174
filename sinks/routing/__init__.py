"""The router worker's parts: routes file, incident lifecycle, actions, Alertmanager payloads and client.

Everything here but :mod:`.delivery` and :mod:`.check` is pure (no I/O, clocks passed in), so
it is unit-tested without a network; the Faust app that drives it is
:mod:`distillguard.streams.router`. Paging itself is Alertmanager's.
"""
