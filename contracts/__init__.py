"""The formats that cross distillguard's boundary, as types (``distillguard.contracts``).

The JSON Schemas beside this file are the contract other teams code against; the modules here
are how the code writes and reads those formats, so that every producer and consumer agrees:
``alert`` (``distill.alert.v1``: :class:`~distillguard.contracts.alert.Alert`, one
:class:`~distillguard.contracts.alert.Severity` order, one time format) and ``link_record``
(:class:`~distillguard.contracts.link_record.LinkRecord`: what the workers send the cluster
agent on the internal links topic).
"""
