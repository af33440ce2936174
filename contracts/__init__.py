"""The formats that cross distillguard's boundary, as types (``distillguard.contracts``).

The JSON Schemas beside this file are the contract other teams code against; the modules here
are how the code writes and reads those formats, so that every producer and consumer agrees:
``request_event`` (``llm.request.v1``: the typed ``RequestEvent`` of ``models/events.py``),
``alert`` (``distill.alert.v1``: :class:`~distillguard.contracts.alert.Alert`, one
:class:`~distillguard.contracts.alert.Severity` order, one time format), ``feedback``
(``distill.feedback.v1``: :class:`~distillguard.contracts.feedback.Feedback`), ``action``
(``distill.action.v1``: :class:`~distillguard.contracts.action.Action`) and ``link_record``
(:class:`~distillguard.contracts.link_record.LinkRecord`: what the workers send the cluster
agent on the internal links topic). Each record type of the public formats has ``parse``
(bytes -> the type, or a ``Bad...`` value saying why not) and ``to_bytes``.
"""
