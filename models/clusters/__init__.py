"""Cross-key detection of coordinated ("hydra") campaigns.

A hydra is many small keys, each under every per-key limit, sharing some infrastructure
(payment method, account, IP prefix, ASN + user agent) or only content frames and timing,
and splitting one systematic prompt set between them. Per key they look like a short
burst; together they are a sweep.

Only extraction-style events (``features.style >= min_style``) create links, so ordinary
traffic behind one NAT, a reseller or a templated app does not cluster; with one exception,
the payment ring (below). Each link value keeps a bounded set of recent member keys:

* strong links (payment fingerprint, account, IP /24 or /48) join keys at once;
* weak links (opening and closing template frames) join keys only when
  ``min_coordinated`` keys used the value within ``window_ms``, i.e. in lockstep;
* a value shared by more than ``max_members`` keys (a big cloud ASN, a popular UA) stops
  linking: a common value says little;
* only a payment fingerprint or an account joins keys whenever they were seen; every other
  value joins two keys only when they began extracting within ``enrollment_window_ms`` of
  each other (a hydra's heads are enrolled together; unrelated campaigns using the same
  public prompt frames or proxy pool a day apart are not one campaign).

Linked keys are merged with union-find; a cluster is scored on the joint behaviour of its
members (extraction-style share of all their events, number of keys, volume, and whether
they split one sweep's topics between them or each swept them all) and raises
one ``entity_type: cluster`` alert whose id stays the same as the cluster grows: it is
re-sent (an update, not a new page) with every member key as members join, also after its
sweep has ended (a pending update falls due on any record's event time). An account
that holds ``account_min_keys`` or more extraction-like keys also raises one
``entity_type: account`` alert (the unit a provider suspends).

A hydra that words its sweep as plain instructions shows no extraction style, but its
accounts still pay. Every key that pays with a payment method sends a sample of its events
(``link_record``), and its payment method alone links it: keys of ``ring_min_accounts`` or
more accounts on one payment method, first seen within ``ring_enrollment_ms`` of each other,
each with ``ring_min_key_events`` or more requests answered at harvest length, are a payment
ring. A ring of ``min_keys`` such keys raises a cluster incident by itself (a warning:
critical takes extraction), and ring members linked to an extraction cluster are named in
its incident. One customer's keys share its card (one account); a team's accounts on one
card that began together and ask for long answers would be a ring too: a warning, for a
human to look at what its keys ask.

The package, by responsibility: ``records.py`` (which events are forwarded, and the link
record each becomes; its wire form is ``contracts/link_record.py``), ``linking.py`` (which
keys a link value joins, shared with the workers' partitioned link-values stage),
``members.py`` (what is known of a key, what makes it a member), ``detector.py`` (union-find,
bookkeeping, when a cluster alerts), ``scoring.py`` (the score and the alerts), ``config.py``
(the hyperparameters, :class:`ClusterConfig`).

>>> det = ClusterDetector(min_keys=3, min_events=6)
>>> from distillguard.models.events import parse_event
>>> alerts = []
>>> for i in range(12):
...     raw = ('{"schema":"llm.request.v1","event_id":"e%d","ts":"2026-02-01T00:00:%02dZ","api_key_id":"k%d",'
...            '"account_id":"a%d","model":"m","prompt":"Think step by step and show all your reasoning: q%d",'
...            '"account":{"payment_fingerprint":"pf_shared"}}' % (i, i, i % 4, i % 4, i))
...     alerts += det.observe(parse_event(raw.encode()))
>>> alerts[0]["entity_type"], sorted(alerts[0]["api_key_ids"])
('cluster', ['k0', 'k1', 'k2'])
"""
from __future__ import annotations

from ...contracts.link_record import LinkRecord, link_batch_bytes, link_records_in
from ..constants import MIN_HARVEST_TOKENS
from .config import ClusterConfig
from .detector import ClusterDetector
from .linking import (DURABLE, SLOW, STRONG, LinkMembers, LinkRefresh, SenderClock, link_step, link_value_key,
                      link_values)
from .records import link_record, link_record_of

__all__ = ["DURABLE", "MIN_HARVEST_TOKENS", "SLOW", "STRONG", "ClusterConfig", "ClusterDetector", "LinkMembers",
           "LinkRecord", "LinkRefresh", "SenderClock", "link_batch_bytes", "link_record", "link_record_of", "link_records_in",
           "link_step", "link_value_key", "link_values"]
