"""The writer's side of the audit log: canonical JSON, chained events, signed checkpoints, keys.

``canonical`` is checked against RFC 8785's own examples (those without floats); a chain
against the definition in ``bus.audit._chain`` (seq, prev, the leaf hash of each value); its
saved and resumed forms against sealing straight through; ``ChainWriter`` against the
transaction life cycle the router drives; and the signing key against ever being shown.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from bus.audit import (
    CHECKPOINT,
    GENESIS,
    ChainState,
    ChainWriter,
    Signer,
    canonical,
    checkpoint_message,
    key_id_of,
    leaf_hash,
    load_signer,
    new_key_hex,
    root_of,
)
from bus.audit._chain import _plain
from bus.audit._keys import KEY_ENV, KEY_FILE_ENV, PublicKey
from bus.bulletin import Marking
from bus.errors import ConfigError

SEED = bytes(range(32))
OTHER_SEED = bytes(range(100, 132))
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def event(n: int) -> dict[str, Any]:
    return {"type": "bulletin.decided", "bulletin_id": f"police:{n:06d}", "n": n}


def signature_verifies(checkpoint: dict[str, Any], key: PublicKey) -> bool:
    return key.verify(base64.b64decode(checkpoint["signature"]), checkpoint_message(checkpoint))


# ---------------------------------------------------------------------------------------------
# canonical: RFC 8785


def test_canonical_sorts_keys_and_drops_whitespace() -> None:
    assert canonical({"b": 1, "a": {"d": [1, 2], "c": None}}) == b'{"a":{"c":null,"d":[1,2]},"b":1}'


def test_canonical_matches_the_rfc_8785_example_without_its_numbers() -> None:
    """RFC 8785 section 3.2.2: the literals and the string of the example (its numbers are
    floats, which audit events never carry)."""
    source = (
        '{"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = '{"literals":[null,true,false],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    assert canonical(json.loads(source)) == expected.encode()


def test_canonical_sorts_keys_by_utf16_code_units_as_rfc_8785_does() -> None:
    """RFC 8785 section 3.2.3: the emoji (a surrogate pair, 0xD83D...) sorts before U+FB33,
    though its code point is larger; U+0080 is written as itself, \\r as an escape."""
    source = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    expected = (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
        '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    )
    assert canonical(source) == expected.encode()


def test_canonical_writes_unicode_as_utf8_not_escapes() -> None:
    assert canonical({"name": "Zoë 🚒"}) == '{"name":"Zoë 🚒"}'.encode()
    assert canonical("\u2028") == b'"\xe2\x80\xa8"'
    assert canonical("\x1f") == b'"\\u001f"'


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, b"0"), (-1, b"-1"), (42, b"42"), (2**53 - 1, b"9007199254740991")],
)
def test_canonical_writes_integers_as_plain_digits(value: int, text: bytes) -> None:
    assert canonical(value) == text


def test_canonical_refuses_integers_beyond_the_ieee_double_range() -> None:
    with pytest.raises(rfc8785.IntegerDomainError):
        canonical(2**53)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@given(json_values)
def test_canonical_json_parses_back_to_the_same_value_and_is_a_fixed_point(value: Any) -> None:
    text = canonical(value)
    assert json.loads(text) == value
    assert canonical(json.loads(text)) == text


# ---------------------------------------------------------------------------------------------
# ChainState


def test_the_first_event_of_a_chain_links_to_genesis() -> None:
    assert GENESIS == "0" * 64
    state = ChainState("edge.0")
    body = json.loads(state.seal(event(0)))
    assert (body["chain"], body["seq"], body["prev"]) == ("edge.0", 0, GENESIS)


def test_sealing_links_each_event_to_the_leaf_hash_of_the_previous_value() -> None:
    state = ChainState("edge.0")
    values = [state.seal(event(n)) for n in range(5)]
    for seq, value in enumerate(values):
        body = json.loads(value)
        assert body["chain"] == "edge.0"
        assert body["seq"] == seq
        if seq:
            assert body["prev"] == leaf_hash(values[seq - 1]).hex()
    assert state.seq == 5
    assert state.prev == leaf_hash(values[-1]).hex()
    assert state.tree.size == 5
    assert state.tree.root() == root_of([leaf_hash(v) for v in values])


def test_a_sealed_value_is_the_canonical_json_of_the_event_and_its_links() -> None:
    state = ChainState("admin")
    value = state.seal({"type": "policy.activated", "version": 3, "by": "ops"})
    assert value == canonical(json.loads(value))
    assert json.loads(value) == {
        "type": "policy.activated",
        "version": 3,
        "by": "ops",
        "chain": "admin",
        "seq": 0,
        "prev": GENESIS,
    }


def test_an_event_cannot_choose_its_own_chain_seq_or_prev() -> None:
    state = ChainState("edge.0")
    state.seal(event(0))
    body = json.loads(state.seal({**event(1), "chain": "admin", "seq": 0, "prev": GENESIS}))
    assert (body["chain"], body["seq"]) == ("edge.0", 1)
    assert body["prev"] != GENESIS


def test_a_checkpoint_is_a_signed_tree_head_over_everything_sealed() -> None:
    signer = Signer(SEED)
    state = ChainState("edge.0")
    values = [state.seal(event(n)) for n in range(3)]
    checkpoint = json.loads(state.checkpoint(signer, now=NOW))
    assert checkpoint == {
        "type": CHECKPOINT,
        "chain": "edge.0",
        "tree_size": 3,
        "root": root_of([leaf_hash(v) for v in values]).hex(),
        "time": NOW.isoformat(),
        "key_id": signer.public.key_id,
        "frontier": state.tree.to_json(),
        "last": leaf_hash(values[-1]).hex(),
        "signature": checkpoint["signature"],
    }
    assert state.since_checkpoint == 0


def test_a_checkpoint_verifies_with_the_signers_public_key_over_checkpoint_message() -> None:
    signer = Signer(SEED)
    state = ChainState("edge.0")
    state.seal(event(0))
    checkpoint = json.loads(state.checkpoint(signer, now=NOW))
    assert signature_verifies(checkpoint, signer.public)
    assert checkpoint_message(checkpoint) == canonical(
        {k: v for k, v in checkpoint.items() if k != "signature"}
    )


def test_a_checkpoint_does_not_verify_with_another_key() -> None:
    state = ChainState("edge.0")
    state.seal(event(0))
    checkpoint = json.loads(state.checkpoint(Signer(SEED), now=NOW))
    assert not signature_verifies(checkpoint, Signer(OTHER_SEED).public)


def test_a_checkpoint_does_not_verify_once_a_signed_field_changes() -> None:
    signer = Signer(SEED)
    state = ChainState("edge.0")
    state.seal(event(0))
    checkpoint = json.loads(state.checkpoint(signer, now=NOW))
    for field, value in [("tree_size", 2), ("root", "00" * 32), ("chain", "edge.1")]:
        assert not signature_verifies({**checkpoint, field: value}, signer.public), field


def test_an_empty_chain_checkpoints_the_empty_tree() -> None:
    checkpoint = json.loads(ChainState("admin").checkpoint(Signer(SEED), now=NOW))
    assert checkpoint["tree_size"] == 0
    assert checkpoint["root"] == root_of([]).hex()
    assert checkpoint["last"] == GENESIS
    assert checkpoint["frontier"] == []


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, list[int]]:
    """A number of events, and after which of them (1..n) a checkpoint is written."""
    count = draw(st.integers(min_value=0, max_value=40))
    marks = draw(st.lists(st.integers(min_value=1, max_value=max(count, 1)), unique=True))
    return count, sorted(m for m in marks if m <= count)


def seal_through(count: int, marks: list[int], signer: Signer) -> tuple[ChainState, list[bytes]]:
    """Seal straight through; returns the state and every record value, checkpoints included."""
    state = ChainState("edge.0")
    values = []
    for n in range(count):
        values.append(state.seal(event(n)))
        if n + 1 in marks:
            values.append(state.checkpoint(signer, now=NOW))
    return state, values


@given(histories())
def test_state_json_round_trips_to_the_same_state(history: tuple[int, list[int]]) -> None:
    state, _ = seal_through(*history, Signer(SEED))
    saved = json.loads(json.dumps(state.to_json()))
    assert ChainState.from_json(saved) == state


@given(histories())
def test_a_state_restored_from_json_seals_what_the_original_would(
    history: tuple[int, list[int]],
) -> None:
    state, _ = seal_through(*history, Signer(SEED))
    restored = ChainState.from_json(json.loads(json.dumps(state.to_json())))
    for n in range(3):
        assert restored.seal(event(100 + n)) == state.seal(event(100 + n))


@given(histories())
def test_resume_from_the_last_checkpoint_gives_the_straight_through_state(
    history: tuple[int, list[int]],
) -> None:
    state, values = seal_through(*history, Signer(SEED))
    checkpoint: dict[str, Any] | None = None
    after: list[bytes] = []
    for value in values:
        body = json.loads(value)
        if body.get("type") == CHECKPOINT:
            checkpoint, after = body, []
        else:
            after.append(value)
    assert ChainState.resume("edge.0", checkpoint, after) == state


def test_resume_without_a_checkpoint_replays_every_event() -> None:
    state, values = seal_through(4, [], Signer(SEED))
    resumed = ChainState.resume("edge.0", None, values)
    assert resumed == state
    assert resumed.since_checkpoint == 4


def test_resume_with_nothing_is_a_fresh_chain() -> None:
    assert ChainState.resume("edge.3", None, []) == ChainState("edge.3")


def test_from_json_refuses_a_frontier_that_does_not_fit_the_seq() -> None:
    state, _ = seal_through(3, [], Signer(SEED))
    saved = {**state.to_json(), "seq": 4}
    with pytest.raises(ValueError, match="a frontier of 4 leaves"):
        ChainState.from_json(saved)


def test_a_copy_of_a_state_advances_independently() -> None:
    state, _ = seal_through(2, [], Signer(SEED))
    copy = state.copy()
    copy.seal(event(9))
    assert (state.seq, state.tree.size, state.since_checkpoint) == (2, 2, 2)
    assert (copy.seq, copy.tree.size, copy.since_checkpoint) == (3, 3, 3)


# ---------------------------------------------------------------------------------------------
# ChainWriter


@dataclass
class FakeClock:
    now: float = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr("bus.audit._writer.time", fake)
    return fake


def writer(
    *, signer: Signer | None = None, every: int = 3, interval_s: float = 60.0
) -> ChainWriter:
    return ChainWriter(ChainState("edge.0"), signer, every=every, interval_s=interval_s)


def test_a_committed_transaction_keeps_what_it_sealed(clock: FakeClock) -> None:
    w = writer(signer=Signer(SEED))
    w.begin()
    values = [w.seal(event(n)) for n in range(2)]
    assert w.state.seq == 0  # not before the commit
    w.committed()
    assert w.state.seq == 2
    assert w.state.prev == leaf_hash(values[-1]).hex()
    w.begin()
    assert json.loads(w.seal(event(2)))["seq"] == 2


def test_a_discarded_transaction_leaves_the_state_as_it_was(clock: FakeClock) -> None:
    w = writer(signer=Signer(SEED))
    w.begin()
    first = w.seal(event(0))
    w.committed()
    w.begin()
    w.seal(event(1))
    w.seal(event(2))
    w.discard()
    assert w.state.seq == 1
    assert w.state.prev == leaf_hash(first).hex()
    w.begin()
    again = json.loads(w.seal(event(1)))
    assert (again["seq"], again["prev"]) == (1, leaf_hash(first).hex())


def test_the_position_is_the_tentative_state_as_json(clock: FakeClock) -> None:
    w = writer()
    w.begin()
    w.seal(event(0))
    position = json.loads(w.position())
    assert position["seq"] == 1
    assert ChainState.from_json(position).seq == 1
    assert w.chain == "edge.0"


def test_a_checkpoint_is_due_after_every_events(clock: FakeClock) -> None:
    w = writer(signer=Signer(SEED), every=3)
    w.begin()
    due = []
    for n in range(3):
        w.seal(event(n))
        due.append(w.checkpoint_due())
    assert due == [False, False, True]


def test_the_count_runs_across_transactions(clock: FakeClock) -> None:
    w = writer(signer=Signer(SEED), every=3)
    for n in range(2):
        w.begin()
        w.seal(event(n))
        assert not w.checkpoint_due()
        w.committed()
    w.begin()
    w.seal(event(2))
    assert w.checkpoint_due()


def test_force_makes_a_checkpoint_due_after_a_single_event(clock: FakeClock) -> None:
    w = writer(signer=Signer(SEED), every=1000)
    w.begin()
    w.seal(event(0))
    assert not w.checkpoint_due()
    assert w.checkpoint_due(force=True)


def test_a_checkpoint_is_due_once_the_interval_has_passed(clock: FakeClock) -> None:
    w = writer(signer=Signer(SEED), every=1000, interval_s=10.0)
    w.begin()
    w.seal(event(0))
    clock.now += 9.9
    assert not w.checkpoint_due()
    clock.now += 0.1
    assert w.checkpoint_due()


def test_due_in_counts_down_from_the_last_checkpoint_while_events_wait(clock: FakeClock) -> None:
    w = writer(signer=Signer(SEED), every=1000, interval_s=10.0)
    assert w.due_in() is None  # nothing to seal
    clock.now += 4
    w.begin()
    w.seal(event(0))
    assert w.due_in() is None  # not committed yet
    w.committed()
    assert w.due_in() == 6.0
    clock.now += 7
    assert w.due_in() == 0.0  # overdue
    w.begin()
    assert w.checkpoint_due()
    w.checkpoint()
    w.committed()
    assert w.due_in() is None


def test_due_in_is_none_without_a_key(clock: FakeClock) -> None:
    w = writer(signer=None, interval_s=10.0)
    w.begin()
    w.seal(event(0))
    w.committed()
    assert w.due_in() is None


def test_a_committed_checkpoint_restarts_the_interval(clock: FakeClock) -> None:
    w = writer(signer=Signer(SEED), every=1000, interval_s=10.0)
    w.begin()
    w.seal(event(0))
    clock.now += 10
    w.checkpoint()
    w.committed()
    w.begin()
    w.seal(event(1))
    assert not w.checkpoint_due()
    clock.now += 10
    assert w.checkpoint_due()


def test_a_discarded_checkpoint_does_not_restart_the_interval(clock: FakeClock) -> None:
    w = writer(signer=Signer(SEED), every=1000, interval_s=10.0)
    w.begin()
    w.seal(event(0))
    clock.now += 10
    w.checkpoint()
    w.discard()
    w.begin()
    w.seal(event(0))
    assert w.checkpoint_due()


def test_no_checkpoint_is_ever_due_without_a_signer(clock: FakeClock) -> None:
    w = writer(signer=None, every=1)
    w.begin()
    for n in range(3):
        w.seal(event(n))
    clock.now += 3600
    assert not w.checkpoint_due()
    assert not w.checkpoint_due(force=True)


def test_no_checkpoint_is_due_when_nothing_was_sealed_since_the_last(clock: FakeClock) -> None:
    w = writer(signer=Signer(SEED), every=1)
    w.begin()
    assert not w.checkpoint_due(force=True)  # nothing sealed at all
    w.seal(event(0))
    assert w.checkpoint_due()
    w.checkpoint()
    clock.now += 3600
    assert not w.checkpoint_due(force=True)
    w.committed()
    w.begin()
    assert not w.checkpoint_due(force=True)


def test_a_writer_checkpoint_covers_the_tentative_events_and_verifies(clock: FakeClock) -> None:
    signer = Signer(SEED)
    w = writer(signer=signer)
    w.begin()
    values = [w.seal(event(n)) for n in range(3)]
    checkpoint = json.loads(w.checkpoint())
    assert checkpoint["tree_size"] == 3
    assert checkpoint["root"] == root_of([leaf_hash(v) for v in values]).hex()
    assert signature_verifies(checkpoint, signer.public)


# ---------------------------------------------------------------------------------------------
# Signer and load_signer


def test_a_signers_repr_shows_its_key_id_and_never_its_key() -> None:
    signer = Signer(SEED)
    for shown in (repr(signer), str(signer), f"{signer!r} {signer}"):
        assert SEED.hex() not in shown
        assert SEED.hex()[:16] not in shown
        assert signer.public.key_id in shown


def test_a_key_id_is_the_first_16_hex_digits_of_the_public_keys_sha256() -> None:
    signer = Signer(SEED)
    assert signer.public.key_id == key_id_of(signer.public.raw)
    assert len(signer.public.key_id) == 16
    assert Signer(OTHER_SEED).public.key_id != signer.public.key_id


def test_a_public_key_round_trips_through_json() -> None:
    public = Signer(SEED).public
    assert PublicKey.from_json(json.loads(json.dumps(public.to_json()))) == public


def test_a_public_key_with_a_mismatched_id_is_refused() -> None:
    data = {**Signer(SEED).public.to_json(), "key_id": Signer(OTHER_SEED).public.key_id}
    with pytest.raises(ConfigError, match="does not match its public key"):
        PublicKey.from_json(data)


def test_a_signer_refuses_a_seed_that_is_not_32_bytes() -> None:
    with pytest.raises(ConfigError, match="32 bytes, not 31"):
        Signer(SEED[:31])


def test_new_key_hex_is_a_fresh_32_byte_seed() -> None:
    first, second = new_key_hex(), new_key_hex()
    assert len(bytes.fromhex(first)) == 32
    assert first != second
    Signer(bytes.fromhex(first))


@pytest.fixture
def no_key_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    return monkeypatch


def test_load_signer_reads_a_hex_seed_from_a_file(tmp_path: Path, no_key_env: object) -> None:
    path = tmp_path / "audit.key"
    path.write_text(SEED.hex() + "\n")
    assert load_signer(path).public == Signer(SEED).public


def test_load_signer_reads_the_file_named_by_the_environment(
    tmp_path: Path, no_key_env: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.key"
    path.write_text(SEED.hex())
    no_key_env.setenv(KEY_FILE_ENV, str(path))
    no_key_env.setenv(KEY_ENV, OTHER_SEED.hex())  # the file wins
    assert load_signer().public == Signer(SEED).public


def test_load_signer_reads_a_hex_seed_from_the_environment(no_key_env: pytest.MonkeyPatch) -> None:
    no_key_env.setenv(KEY_ENV, f"  {SEED.hex()}  ")
    assert load_signer().public == Signer(SEED).public


def test_load_signer_without_any_key_says_how_to_make_one(no_key_env: object) -> None:
    with pytest.raises(ConfigError, match="no audit signing key") as error:
        load_signer()
    assert KEY_FILE_ENV in str(error.value)
    assert "liaison audit keygen" in str(error.value)


def test_load_signer_names_a_key_file_it_cannot_read(tmp_path: Path, no_key_env: object) -> None:
    path = tmp_path / "missing.key"
    with pytest.raises(ConfigError, match="cannot read the audit key file") as error:
        load_signer(path)
    assert str(path) in str(error.value)


def shown(error: BaseException) -> str:
    """Everything a traceback of the error would print: its message and its causes'."""
    parts = []
    current: BaseException | None = error
    while current is not None:
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def test_load_signer_says_a_key_that_is_not_hex_is_not_hex_and_never_shows_it(
    tmp_path: Path, no_key_env: object, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = SEED.hex()[:40] + "zz" + SEED.hex()[42:]
    path = tmp_path / "audit.key"
    path.write_text(secret)
    with pytest.raises(ConfigError, match="is not hex") as error:
        load_signer(path)
    assert str(path) in str(error.value)
    assert secret[:8] not in shown(error.value)
    assert secret[-8:] not in shown(error.value)
    assert capsys.readouterr() == ("", "")


def test_load_signer_says_where_a_non_hex_environment_key_came_from(
    no_key_env: pytest.MonkeyPatch,
) -> None:
    secret = "not-a-key-" + SEED.hex()
    no_key_env.setenv(KEY_ENV, secret)
    with pytest.raises(ConfigError, match=f"the audit key in {KEY_ENV} is not hex") as error:
        load_signer()
    assert SEED.hex()[:8] not in shown(error.value)


def test_load_signer_says_a_key_of_the_wrong_length_needs_32_bytes_and_never_shows_it(
    tmp_path: Path, no_key_env: object, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = SEED[:31].hex()
    path = tmp_path / "audit.key"
    path.write_text(secret)
    with pytest.raises(ConfigError, match="32 bytes, not 31") as error:
        load_signer(path)
    assert secret[:8] not in shown(error.value)
    assert secret[-8:] not in shown(error.value)
    assert capsys.readouterr() == ("", "")


_PLAIN_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127)), children, max_size=4)
    ),
    max_leaves=20,
)


@given(_PLAIN_JSON)
def test_the_fast_canonical_form_is_byte_for_byte_rfc_8785(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value)


_ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@given(_ANY_JSON)
def test_canonical_is_rfc_8785_for_values_off_the_fast_path_too(value: Any) -> None:
    """Floats and non-ASCII keys are not plain: they take the general implementation."""
    assert canonical(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ({"a": [1, "x", True, None, {"b": -(2**53) + 1}]}, True),
        ({"a": [1, 2.0]}, False),
        ({"é": 1}, False),
        ({"a": 2**53}, False),
        ([-(2**53)], False),
        ({1: 2}, False),
        ({"a": Marking.GREEN}, False),  # a str subclass: the general path decides
    ],
)
def test_only_exactly_plain_values_take_the_fast_path(value: Any, plain: bool) -> None:
    assert _plain(value) is plain
