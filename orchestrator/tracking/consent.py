"""Subscription groups, each customer's choices, the suppression list, and ``may_send``.

A *subscription group* is a kind of message on one channel (``email:marketing``,
``email:product_updates``, ``sms:marketing``). An ``opt_out`` group is sent to until the
customer leaves it; an ``opt_in`` group only once they joined it.

Two tables hold what customers and mail systems said:

- ``subscription_preferences``: a customer's latest choice per group (the preference page,
  one-click unsubscribe, an import), with its source and time.
- ``suppressions``: addresses and customers not to send to on a channel, with the reason:
  ``bounce``, ``complaint`` (from the provider's webhooks), ``manual``, or ``unsubscribe``
  (written with the choice, for the address the message went to: a mailbox owner who left a
  group stays out of it under any customer id). A row with a group covers that group only;
  one without covers every message on the channel.

``may_send`` reads both, and the profile's per-channel consent, in this order: suppressed
(``suppressed:<reason>``: a bounce, complaint or manual block, or an unsubscribe from the
whole channel; the most serious is named), left the group (``unsubscribed:<group>``: the
customer's choice, or the address's unsubscribe from that group), an opt-in group not joined
(``no_consent:<group>``), the profile's consent for the channel is false
(``consent:<channel>``). A customer's choices are read across the ids merged into them, the
latest choice winning, so a merge never brings back someone who left.

Errors::

    ValueError
    └── UnknownGroupError   a group that is not configured
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import asyncpg

from journeyman.orchestrator.customers import identity

GroupMode = Literal["opt_in", "opt_out"]
SuppressionReason = Literal["bounce", "complaint", "unsubscribe", "manual"]
# Where a choice came from: the routes write the first two; imports and admin tools the rest.
PreferenceSource = Literal["one_click", "preference_page", "api", "import"]

DEFAULT_GROUP_NAME: Final = "marketing"
# The profile trait holding the address a channel sends to.
ADDRESS_TRAITS: Final = {"email": "email", "sms": "phone"}
# When several suppressions apply, the rule names the most serious.
_SEVERITY: Final = ["complaint", "bounce", "manual", "unsubscribe"]
_NAME: Final = re.compile(r"[a-z0-9_]{1,64}")


class UnknownGroupError(ValueError):
    """A subscription group that is not configured."""


@dataclass(frozen=True)
class SubscriptionGroup:
    """A kind of message on one channel that customers can join or leave."""

    channel: str
    name: str
    label: str  # shown on the preference page
    description: str = ""
    mode: GroupMode = "opt_out"

    def __post_init__(self) -> None:
        for part in (self.channel, self.name):
            if not _NAME.fullmatch(part):
                raise ValueError(f"{part!r}: channel and group names are [a-z0-9_], 1-64 chars")

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.name}"

    @property
    def default_subscribed(self) -> bool:
        return self.mode == "opt_out"


class SubscriptionGroups:
    """The configured groups, in the order the preference page lists them."""

    def __init__(self, groups: Iterable[SubscriptionGroup]) -> None:
        self._groups = tuple(groups)
        self._by_key = {group.key: group for group in self._groups}
        if len(self._by_key) != len(self._groups):
            raise ValueError("subscription groups must have distinct channel:name keys")

    def __iter__(self) -> Iterator[SubscriptionGroup]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    def get(self, key: str, *, channel: str | None = None) -> SubscriptionGroup:
        """A group by key (``email:marketing``), or by name within ``channel``."""
        full = key if ":" in key or channel is None else f"{channel}:{key}"
        found = self._by_key.get(full)
        if found is None or (channel is not None and found.channel != channel):
            known = ", ".join(self._by_key) or "none"
            raise UnknownGroupError(f"no subscription group {full!r} (configured: {known})")
        return found

    def default_for(self, channel: str) -> SubscriptionGroup:
        """The group a message on ``channel`` belongs to when it names none."""
        return self.get(DEFAULT_GROUP_NAME, channel=channel)


def groups_from(settings: Iterable[Any]) -> SubscriptionGroups:
    """The groups configured in ``customers.yaml`` (``subscription_groups``)."""
    return SubscriptionGroups(
        SubscriptionGroup(
            channel=group.channel,
            name=group.name,
            label=group.label,
            description=group.description,
            mode=group.mode,
        )
        for group in settings
    )


DEFAULT_GROUPS: Final = SubscriptionGroups(
    [
        SubscriptionGroup("email", "marketing", "Offers and news by email"),
        SubscriptionGroup("email", "product_updates", "Product updates by email"),
        # Marketing texts need the customer's express agreement in most places.
        SubscriptionGroup("sms", "marketing", "Offers by text message", mode="opt_in"),
    ]
)


@dataclass(frozen=True)
class Decision:
    """Whether a message may go out; ``rule`` names what said no."""

    allowed: bool
    rule: str | None = None


def normalise_address(address: str) -> str:
    """The form addresses are stored and matched in (mail systems treat case as noise)."""
    return address.strip().lower()


async def _ids(conn: asyncpg.Connection, customer_id: str) -> tuple[str, list[str]]:
    """The canonical customer, and every id that stands for them."""
    canonical = await identity.canonical(conn, customer_id)
    return canonical, [canonical, *await identity.aliases_of(conn, canonical)]


async def may_send(
    conn: asyncpg.Connection,
    *,
    customer_id: str,
    channel: str,
    group: str | None,
    address: str | None = None,
    groups: SubscriptionGroups = DEFAULT_GROUPS,
) -> Decision:
    """Whether a message of ``group`` may go to the customer on ``channel`` now.

    ``group`` is a name in the channel (``marketing``) or a key (``email:marketing``); None
    is a transactional message (a receipt): only channel-wide suppressions and the profile's
    consent apply. ``address`` is where the message would go; by default the profile's
    (``email`` or ``phone`` trait). Raises ``UnknownGroupError`` for a group not configured.
    """
    subscription = None if group is None else groups.get(group, channel=channel)
    canonical, ids = await _ids(conn, customer_id)
    profile = await conn.fetchrow(
        "SELECT traits, consent FROM profiles WHERE customer_id = $1", canonical
    )
    traits = profile["traits"] if profile else {}
    if address is None and isinstance(traits.get(ADDRESS_TRAITS.get(channel, "")), str):
        address = traits[ADDRESS_TRAITS[channel]]
    rows = await conn.fetch(
        "SELECT reason, group_key FROM suppressions WHERE channel = $1"
        " AND (customer_id = ANY($2::text[]) OR address = $3)"
        " AND (group_key IS NULL OR group_key = $4)"
        " ORDER BY array_position($5::text[], reason)",
        channel,
        ids,
        None if address is None else normalise_address(address),
        None if subscription is None else subscription.key,
        _SEVERITY,
    )
    # A group's unsubscribe is a choice, named as one below; everything else blocks outright.
    blocking = [row["reason"] for row in rows if row["group_key"] is None]
    blocking += [row["reason"] for row in rows if row["reason"] != "unsubscribe"]
    if blocking:
        return Decision(False, f"suppressed:{min(blocking, key=_SEVERITY.index)}")
    if subscription is not None:
        choice = await _latest_choice(conn, ids, subscription.key)
        if rows or (choice is not None and not choice["subscribed"]):
            return Decision(False, f"unsubscribed:{subscription.key}")
        consent = profile["consent"] if profile else {}
        # Consent to the channel given with the profile (identify's `consent` trait) is the
        # express agreement an opt-in group needs, unless the customer left the group since.
        if subscription.mode == "opt_in" and choice is None and consent.get(channel) is not True:
            return Decision(False, f"no_consent:{subscription.key}")
    consent = profile["consent"] if profile else {}
    if consent.get(channel) is False:
        return Decision(False, f"consent:{channel}")
    return Decision(True)


async def _latest_choice(
    conn: asyncpg.Connection, ids: list[str], group_key: str
) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT subscribed, updated_at FROM subscription_preferences"
        " WHERE customer_id = ANY($1::text[]) AND group_key = $2"
        " ORDER BY updated_at DESC LIMIT 1",
        ids,
        group_key,
    )
    return row


async def suppress(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    channel: str,
    reason: SuppressionReason,
    address: str | None = None,
    customer_id: str | None = None,
    group: str | None = None,
    send_key: str | None = None,
    detail: str | None = None,
) -> bool:
    """Stop sending to an address or a customer on a channel (or one group of it, by key).

    For bounces and complaints (the providers' webhooks), manual blocks and unsubscribes.
    Returns False when the same suppression was already recorded (the first one stays).
    """
    if address is None and customer_id is None:
        raise ValueError("a suppression needs an address or a customer id")
    if reason not in _SEVERITY:
        raise ValueError(f"unknown suppression reason {reason!r}")
    inserted = await conn.fetchval(
        "INSERT INTO suppressions"
        " (channel, address, customer_id, group_key, reason, send_key, detail)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id",
        channel,
        None if address is None else normalise_address(address),
        customer_id,
        group,
        reason,
        send_key,
        detail,
    )
    return inserted is not None


async def lift_suppressions(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    channel: str,
    reasons: Iterable[SuppressionReason],
    address: str | None = None,
    customer_ids: Iterable[str] = (),
    group: str | None = None,
) -> int:
    """Remove suppressions of the given reasons for an address or customers; with ``group``
    only those of that group, else only channel-wide ones. Returns how many went."""
    result: str = await conn.execute(
        "DELETE FROM suppressions WHERE channel = $1 AND reason = ANY($2::text[])"
        " AND (address = $3 OR customer_id = ANY($4::text[]))"
        " AND group_key IS NOT DISTINCT FROM $5",
        channel,
        list(reasons),
        None if address is None else normalise_address(address),
        list(customer_ids),
        group,
    )
    return int(result.split()[-1])


@dataclass(frozen=True)
class Preference:
    """A customer's standing in one group: their latest choice, else the group's default."""

    customer_id: str  # the canonical customer
    group: SubscriptionGroup
    subscribed: bool
    chosen_at: datetime | None  # None: never chose; ``subscribed`` is the default
    changes: int  # how often the canonical customer's choice changed (event ids use it)


async def preferences(
    conn: asyncpg.Connection, *, customer_id: str, groups: SubscriptionGroups = DEFAULT_GROUPS
) -> list[Preference]:
    """The customer's standing in every configured group, in the configured order."""
    canonical, ids = await _ids(conn, customer_id)
    rows = await conn.fetch(
        "SELECT DISTINCT ON (group_key) group_key, subscribed, updated_at"
        " FROM subscription_preferences WHERE customer_id = ANY($1::text[])"
        " ORDER BY group_key, updated_at DESC",
        ids,
    )
    latest = {row["group_key"]: row for row in rows}
    counts = dict(
        await conn.fetch(
            "SELECT group_key, changes FROM subscription_preferences WHERE customer_id = $1",
            canonical,
        )
    )
    out = []
    for group in groups:
        row = latest.get(group.key)
        out.append(
            Preference(
                customer_id=canonical,
                group=group,
                subscribed=group.default_subscribed if row is None else row["subscribed"],
                chosen_at=None if row is None else row["updated_at"],
                changes=counts.get(group.key, 0),
            )
        )
    return out


async def set_subscription(
    conn: asyncpg.Connection,
    *,
    customer_id: str,
    group: SubscriptionGroup,
    subscribed: bool,
    source: PreferenceSource,
    address: str | None = None,
    send_key: str | None = None,
) -> bool:
    """Record a customer's choice for a group (call inside a transaction); True if it changed.

    Leaving a group also suppresses ``address`` (where the message went) for that group;
    joining it lifts the group's unsubscribe suppressions of the customer and the address.
    Bounces, complaints and channel-wide suppressions are never lifted by a customer's choice.
    """
    canonical, ids = await _ids(conn, customer_id)
    # One choice at a time per customer, so the change count (and the event ids made
    # from it) follows the order the choices were made in.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('subscription/' || $1))", canonical)
    current = await _latest_choice(conn, ids, group.key)
    standing = group.default_subscribed if current is None else current["subscribed"]
    changed = standing != subscribed
    if changed:
        await conn.execute(
            "INSERT INTO subscription_preferences"
            " (customer_id, group_key, subscribed, source, send_key, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, clock_timestamp())"
            " ON CONFLICT (customer_id, group_key) DO UPDATE SET"
            " subscribed = excluded.subscribed, source = excluded.source,"
            " send_key = excluded.send_key, updated_at = clock_timestamp(),"
            " changes = subscription_preferences.changes + 1",
            canonical,
            group.key,
            subscribed,
            source,
            send_key,
        )
    if subscribed:
        await lift_suppressions(
            conn,
            channel=group.channel,
            reasons=["unsubscribe"],
            address=address,
            customer_ids=ids,
            group=group.key,
        )
    elif address is not None:
        # The customer's choice is in their preferences; the address is suppressed for the
        # group as well, so whoever reads that mailbox stays out under any customer id.
        await suppress(
            conn,
            channel=group.channel,
            reason="unsubscribe",
            address=address,
            group=group.key,
            send_key=send_key,
        )
    return changed
