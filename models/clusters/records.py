"""Which events the cluster detector hears of, and the link record each one becomes.

The record's wire form is :mod:`distillguard.contracts.link_record`; this module builds it
from a processed event (its features, its key's count) and is shared by the workers and
replay, so both feed the cluster detector the same records.
"""
from __future__ import annotations

import functools
import ipaddress

from ...contracts.link_record import LinkRecord
from ..cohort import FIRST_KEY_EVENTS, MAX_KEY_EVENTS, content_family, item_fingerprint, prompt_opening, young_account
from ..constants import LINK_MIN_STYLE, MIN_HARVEST_TOKENS
from ..events import RequestEvent
from ..features import BENCHMARK_FORMAT, MAX_PROMPT_CHARS, EventFeatures, _h64, answered_style, normalise_prompt


def link_record(event: RequestEvent, result, min_score: float = 0.01, *, partition: int = -1,
                offset: int = -1) -> LinkRecord | None:
    """The link record to forward for a processed event, or None for ordinary traffic.

    Forwarded: extraction-style events, and every event of a key that has shown any
    extraction style (so the cluster sees its members' whole volume); and, of every key
    that pays with a payment method, a sample of its events (its 1st, 2nd, 4th, 8th, ...
    and every 64th: a few records per key, for the payment rings of ``ClusterDetector``);
    and the first ``MAX_KEY_EVENTS`` events of a key whose account is young
    (``cohort.YOUNG_MS``: what the content cohorts of ``CohortDetector`` are made of: their members
    send 10-40 plain requests each; young accounts are a small share of ordinary traffic), and
    every key's first ``FIRST_KEY_EVENTS`` (a cohort member on an aged account is judged on them).
    """
    if result.duplicate or result.features is None:
        return None
    n = result.key_events
    if result.features.style > 0 or (result.row is not None and result.row["score"] > min_score) or (
            event.payment_fingerprint and n > 0 and (n & (n - 1) == 0 or n % 64 == 0)) or (
            0 < n <= MAX_KEY_EVENTS and young_account(event.ts_ms, event.account_created_ms)):
        return link_record_of(event, result.features, partition, offset, n or -1, result.product)
    if 0 < n <= FIRST_KEY_EVENTS:
        rec = link_record_of(event, result.features, partition, offset, n, result.product)
        rec.cohort_only = 1
        return rec
    return None


def link_record_of(event: RequestEvent, f: EventFeatures, partition: int = -1, offset: int = -1,
                   key_events: int = -1, product: int = 0) -> LinkRecord:
    """The link record of one event with its features (whether or not it is forwarded)."""
    style = round(harvest_style(f), 4)
    # The content family and item only for young accounts' events and a key's first
    # MAX_KEY_EVENTS (of a mature account: the few forwarded, see link_record): the cohort
    # detector reads nothing else, and they cost ~10 % of featurize per prompt.
    for_cohort = young_account(event.ts_ms, event.account_created_ms) or 0 < key_events <= MAX_KEY_EVENTS
    family = content_family(event.prompt, bool(f.families & BENCHMARK_FORMAT)) if for_cohort else -1
    item = item_fingerprint(event.prompt) if for_cohort else -1
    # (normalised as featurize read it: its text was normalised just before, and is remembered)
    opening = prompt_opening(normalise_prompt(event.prompt[:MAX_PROMPT_CHARS])) if for_cohort else -1
    if style < LINK_MIN_STYLE:
        # A record under the linking style offers no link value but its payment method
        # (ClusterDetector.values_to_link): its closing frame (a normalisation of the prompt's
        # end, ~40 % of a record's cost), network and client are not computed (dev-s1: most
        # forwarded records; they are the sampled events of keys with any extraction score).
        return LinkRecord(event.api_key_id, event.account_id, event.ts_ms, style, f.template_hash, -1,
                          event.payment_fingerprint, None, None, None, f.output_tokens, event.account_created_ms,
                          partition, offset, f.topic_bucket, key_events, family, item, f.simhash, product,
                          opening=opening)
    return LinkRecord(event.api_key_id, event.account_id, event.ts_ms, style, f.template_hash,
                      tail_frame(event.prompt), event.payment_fingerprint, ip_prefix(event.client_ip), event.asn,
                      _h64(event.user_agent) if event.user_agent else None, f.output_tokens,
                      event.account_created_ms, partition, offset, f.topic_bucket, key_events, family, item,
                      f.simhash, product, opening=opening)


def harvest_style(f: EventFeatures) -> float:
    """The event's extraction style, discounted when its answer was short: a final-answer
    eval or a classifier behind one frame collects no teacher signal worth distilling, so it
    must not count as a hydra member (unknown usage stays undiscounted)."""
    if 0 <= f.output_tokens < MIN_HARVEST_TOKENS:
        return f.style * f.output_tokens / MIN_HARVEST_TOKENS
    return answered_style(f)


@functools.lru_cache(maxsize=1 << 16)  # a key sends from a few addresses, IPv6 ones cost ~10 us to parse
def ip_prefix(ip: str | None) -> str | None:
    """The client's network: its IPv4 /24 or IPv6 /48 (None when not an address)."""
    if not ip:
        return None
    parts = ip.split(".")
    if len(parts) == 4 and all(p.isascii() and p.isdigit() and len(p) <= 3 and int(p) <= 255 and (p == "0" or p[0] != "0")
                               for p in parts):
        return f"{int(parts[0])}.{int(parts[1])}.{int(parts[2])}.0/24"  # the common case, without ipaddress
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def tail_frame(text: str) -> int:
    """Hash of the prompt's closing frame: its last eight words without digits."""
    # Normalised (models/normalise.py) like every other text signal: a campaign that varies
    # zero-width characters or combining marks per request must not escape lockstep linking
    # (obfuscated dev-s1: one such campaign had 25 of 79 keys linked on the raw text). Cut
    # before normalising, which only shortens text, so the last 400 characters are there.
    words = normalise_prompt(text[-800:])[-400:].split()  # (featurize normalised a shorter prompt already)
    return _h64(" ".join(w for w in words[-8:] if not any(map(str.isdigit, w))))  # (map: no bytecode per character)
