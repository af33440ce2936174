"""Alert routing: routes file, targets, incident lifecycle, delivery (the router worker's pure parts).

Everything here but :mod:`.delivery` is pure (no I/O, clocks passed in), so it is unit-tested
without a network; the Faust app that drives it is :mod:`distillguard.streams.router`.
"""
