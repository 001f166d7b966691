"""The hand-rolled aggregate3 codec agrees with eth_abi, on the fast path and off it."""

from __future__ import annotations

from eth_abi import decode, encode
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.multicall import (
    BALANCE_OF_SELECTOR,
    balance_of_call,
    decode_aggregate3,
    decode_uint,
    encode_aggregate3,
    encode_balance_of_aggregate3,
    encode_call,
)

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
calldata = st.binary(max_size=100).map(lambda b: "0x" + b.hex())
results = st.tuples(st.booleans(), st.one_of(st.binary(min_size=32, max_size=32), st.binary()))


def reference_calldata(calls: list[tuple[str, str]]) -> str:
    args = [(target, True, bytes.fromhex(data[2:])) for target, data in calls]
    return "0x82ad56cb" + encode(["(address,bool,bytes)[]"], [args]).hex()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(addresses, calldata), max_size=20))
def test_encoding_matches_eth_abi(calls: list[tuple[str, str]]) -> None:
    tuples = [encode_call(target, data) for target, data in calls]
    assert encode_aggregate3(tuples) == reference_calldata(calls)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(addresses, addresses), min_size=1, max_size=20))
def test_balance_of_tuples_match_the_generic_encoder(pairs: list[tuple[str, str]]) -> None:
    tuples = [balance_of_call(token, account) for token, account in pairs]
    generic = [
        encode_call(token, "0x" + BALANCE_OF_SELECTOR + account[2:].rjust(64, "0"))
        for token, account in pairs
    ]
    assert tuples == generic
    assert encode_aggregate3(tuples) == reference_calldata(
        [(t, "0x" + BALANCE_OF_SELECTOR + a[2:].rjust(64, "0")) for t, a in pairs]
    )


mixed_case = addresses.map(
    lambda a: "0x" + "".join(c.upper() if i % 3 else c for i, c in enumerate(a[2:]))
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.one_of(addresses, mixed_case), st.one_of(addresses, mixed_case)), max_size=20
    )
)
def test_balance_of_chunks_built_in_one_join_match_the_tuples(pairs: list[tuple[str, str]]) -> None:
    """The reader's calldata (no per-pair cache) is the per-pair tuples' aggregate3, for
    canonical lower-case accounts (copied as they are) and any other case (normalised)."""
    tuples = [balance_of_call(token, account) for account, token in pairs]
    assert encode_balance_of_aggregate3(pairs) == encode_aggregate3(tuples)
    assert encode_balance_of_aggregate3(pairs) == reference_calldata(
        [(t, "0x" + BALANCE_OF_SELECTOR + a[2:].lower().rjust(64, "0")) for a, t in pairs]
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(results, max_size=20))
def test_decoding_matches_eth_abi_and_only_32_byte_successes_count(
    returned: list[tuple[bool, bytes]],
) -> None:
    hex_result = "0x" + encode(["(bool,bytes)[]"], [returned]).hex()
    expected = [data if ok and len(data) == 32 else None for ok, data in returned]
    assert decode_aggregate3(hex_result, len(returned)) == expected
    ((reference),) = decode(["(bool,bytes)[]"], bytes.fromhex(hex_result[2:]))
    assert [(ok, data) for ok, data in reference] == returned


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**256 - 1), min_size=1, max_size=50))
def test_uniform_fast_path_decodes_every_word(values: list[int]) -> None:
    returned = [(True, v.to_bytes(32, "big")) for v in values]
    hex_result = "0x" + encode(["(bool,bytes)[]"], [returned]).hex()
    assert [decode_uint(w) for w in decode_aggregate3(hex_result, len(values))] == values


def test_one_failure_among_uniform_results_is_not_read_as_a_word() -> None:
    returned = [(True, (5).to_bytes(32, "big"))] * 10
    returned[6] = (False, (7).to_bytes(32, "big"))  # reverted with exactly 32 bytes of data
    hex_result = "0x" + encode(["(bool,bytes)[]"], [returned]).hex()
    words = decode_aggregate3(hex_result, 10)
    assert words[6] is None
    assert [decode_uint(w) for i, w in enumerate(words) if i != 6] == [5] * 9
