"""``venue_accounts`` on PostgreSQL and SQLite: entries upserted and read back for the API
(by account, the liquidatable ranking with ``?venue=``), and the venue events' outbox: a
transition stays unannounced until marked, a reopened store finds exactly what was not."""

from __future__ import annotations

from daemon.store.venues import VenueRow
from daemon.store.writer import HealthStore

ALICE, BOB, CAROL = ("0x" + c * 40 for c in "abc")


def row(
    venue: str,
    account: str,
    *,
    liquidatable: bool,
    profit: float | None = None,
    shortfall: float | None = None,
    health: str = "0.9",
) -> VenueRow:
    return VenueRow(
        venue=venue,
        account=account,
        kind="aave_v3",
        chain="eth",
        block_number=7,
        liquidatable=liquidatable,
        stale=False,
        profit_usd=profit,
        shortfall_usd=shortfall,
        document={"venue": venue, "account": account, "health": health},
    )


async def test_entries_rank_and_announce_across_a_restart(
    store: HealthStore, database_url: str
) -> None:
    await store.write_venue_rows(
        [
            row("aave", ALICE, liquidatable=True, profit=5.0, shortfall=100.0),
            row("aave", BOB, liquidatable=True, profit=50.0, shortfall=1.0),
            row("aave", CAROL, liquidatable=True, shortfall=900.0),  # unpriced plan: last
            row("morpho", ALICE, liquidatable=True, profit=10.0),
            row("morpho", BOB, liquidatable=False),
        ]
    )
    q = store.queries
    page = await q.liquidatable_page()
    assert [(d["venue"], d["account"]) for d in page.venue_positions] == [
        ("aave", BOB),
        ("morpho", ALICE),
        ("aave", ALICE),
        ("aave", CAROL),
    ]
    assert page.venue_total == 4
    aave = await q.liquidatable_page(venue="aave", limit=2, offset=1)
    assert ([d["account"] for d in aave.venue_positions], aave.venue_total) == ([ALICE, CAROL], 3)
    alice = await q.account(ALICE)  # known to venues only: a record all the same
    assert alice is not None
    assert alice.health is None
    assert [d["venue"] for d in alice.venues] == ["aave", "morpho"]

    pending = await store.venue_announcements(100)
    assert {(a.venue, a.account, a.liquidatable) for a in pending} == {
        ("aave", ALICE, True),
        ("aave", BOB, True),
        ("aave", CAROL, True),
        ("morpho", ALICE, True),
    }  # morpho/BOB is new and not liquidatable: nothing to announce
    await store.mark_venue_announced([a for a in pending if a.account != CAROL])
    # Re-writing the same state announces nothing new; a recovery is a transition again.
    await store.write_venue_rows([row("aave", BOB, liquidatable=False, health="1.1")])
    await store.close()
    async with await HealthStore.open(database_url) as reopened:
        again = await reopened.venue_announcements(100)
        assert {(a.venue, a.account, a.liquidatable) for a in again} == {
            ("aave", BOB, False),
            ("aave", CAROL, True),
        }
        assert (await reopened.queries.venue_states())[("aave", BOB)] is False
        await reopened.mark_venue_announced(again)
        assert await reopened.venue_announcements(100) == []
