"""bus.policy by example: the example policy's outcomes, validation errors, each redaction
action, how steps combine, the manifest and the View record."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema
from fastavro.validation import validate
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretBytes

from bus.bulletin import Bulletin, BulletinGenerator, Marking, Status
from bus.errors import PolicyError
from bus.policy import (
    Action,
    AppliedRedaction,
    CompiledPolicy,
    Decision,
    Policy,
    RedactionKeys,
    Step,
    View,
    WithheldReason,
    compile_policy,
    load_policy,
    parse_policy,
)
from bus.policy._redact import OpTree, apply_steps
from bus.schemas import VIEW
from tests.policy_strategies import populated_bulletin, values_at
from tests.strategies import real_schema

SCHEMA = real_schema()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy.yaml"
KEYS = RedactionKeys(master=SecretBytes(b"unit-test-master-key-not-a-secret"))
POLICY = load_policy(EXAMPLE)
COMPILED = compile_policy(POLICY, SCHEMA, KEYS)
AGENCIES = list(POLICY.agencies)
PSEUDONYM = re.compile(r"^pseudonym:[a-z2-7]{16}$")
KM_PER_DEGREE = 111.32


def _bulletin(
    kind: str,
    source: str,
    marking: Marking = Marking.GREEN,
    *,
    status: Status = Status.ACTUAL,
    releasable_to: tuple[str, ...] = (),
    path: str = "body",
    seed: int = 1,
) -> Bulletin:
    """A bulletin of ``kind`` with a value at ``path``, from ``source``, as told."""
    bulletin = populated_bulletin(SCHEMA, kind, seed, AGENCIES, path)
    update: dict[str, Any] = {
        "source_agency": source,
        "marking": marking,
        "status": status,
        "releasable_to": list(releasable_to),
    }
    return bulletin.model_copy(update=update)


def _record(bulletin: Bulletin) -> dict[str, Any]:
    return {**bulletin.envelope_avro(), "body": bulletin.body}


def _view(decision: Decision, agency: str) -> View:
    view = decision.view_for(agency)
    assert view is not None, f"{agency} got no view: {decision.withheld}"
    return view


def _reasons(decision: Decision) -> dict[str, WithheldReason]:
    return {w.recipient: w.reason for w in decision.withheld}


def _manifest(view: View) -> dict[str, tuple[Action, str, tuple[str, ...]]]:
    return {r.path: (r.action, r.detail, r.rules) for r in view.redactions}


def _policy(
    rules: list[dict[str, Any]], agencies: dict[str, dict[str, Any]] | None = None
) -> Policy:
    defined = agencies or {"north-river": {"name": "N"}, "vale-fire": {"name": "V"}}
    return parse_policy({"version": 2, "agencies": defined, "rules": rules})


def _rule(rule_id: str = "r1", **fields: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "source": {"all": True},
        "recipients": {"all": True},
        "kinds": ["*"],
        "max_marking": "RED",
        **fields,
    }


def _problems(*rules: dict[str, Any]) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        compile_policy(_policy(list(rules)), SCHEMA, KEYS)
    return caught.value.problems


def _haversine_km(a: dict[str, float], b: dict[str, float]) -> float:
    la1, la2 = math.radians(a["lat"]), math.radians(b["lat"])
    dlat, dlon = la2 - la1, math.radians(b["lon"] - a["lon"])
    h = math.sin(dlat / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin(dlon / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(h)))


def _apply(value: Any, step: Step, key: bytes = b"k") -> tuple[Any, list[AppliedRedaction]]:
    redacted, manifest = apply_steps({"f": value}, OpTree.build({"f": step}), key)
    return redacted["f"], manifest


# -- the example policy ------------------------------------------------------------------


def test_the_example_policy_loads_and_compiles_every_rule() -> None:
    assert POLICY.version == 1
    assert [r.id for r in POLICY.rules] == [
        "emergency-alerts",
        "health-casualties",
        "public-notices",
        "transit-rfi",
    ]
    assert POLICY.rules[0].max_marking is Marking.AMBER_STRICT  # spelled AMBER+STRICT
    assert POLICY.groups["emergency"] == {"north-river", "harbour-watch", "vale-fire"}
    used = {rule for entries in COMPILED.plans.values() for e in entries for rule in e.rules}
    assert used == {r.id for r in POLICY.rules}


def test_the_health_board_gets_situation_reports_without_pii_and_with_coarse_figures() -> None:
    bulletin = _bulletin(
        "situation_report", "north-river", Marking.AMBER, path="body.incident_location"
    )
    view = _view(COMPILED.evaluate(bulletin), "saltmarsh-health")
    body, original = view.record["body"], bulletin.body
    assert view.rules == ("health-casualties",)
    assert body["reporting_officer"] is None
    assert body["persons_involved"] is None
    location = body["incident_location"]
    assert location != original["incident_location"]
    assert _haversine_km(location, original["incident_location"]) <= 10
    cell = (location["lat"] + 90) / (10 / KM_PER_DEGREE) - 0.5
    assert cell == pytest.approx(round(cell), abs=1e-3), "the latitude is a 10 km cell centre"
    displaced, was = body["casualties"]["displaced"], original["casualties"]["displaced"]
    assert displaced % 10 == 0
    assert displaced <= was < displaced + 10
    assert body["summary"] == original["summary"][:280]
    assert body["title"] == original["title"]
    expected = {
        "body.reporting_officer": (Action.DROP, "", ("health-casualties",)),
        "body.persons_involved": (Action.DROP, "", ("health-casualties",)),
        "body.incident_location": (Action.GENERALIZE, "grid_km=10", ("health-casualties",)),
    }
    # The manifest lists only redactions that changed a value.
    if displaced != was:
        expected["body.casualties.displaced"] = (
            Action.GENERALIZE,
            "bucket=10",
            ("health-casualties",),
        )
    if len(original["summary"]) > 280:
        expected["body.summary"] = (Action.TRUNCATE, "max_chars=280", ("health-casualties",))
    assert _manifest(view) == expected


def test_emergency_services_share_situation_reports_with_contacts_pseudonymized() -> None:
    bulletin = _bulletin(
        "situation_report", "north-river", Marking.AMBER, path="body.reporting_officer"
    )
    decision = COMPILED.evaluate(bulletin)
    officer = bulletin.body["reporting_officer"]
    tokens = []
    for agency in ("harbour-watch", "vale-fire"):
        view = _view(decision, agency)
        shown = view.record["body"]["reporting_officer"]
        assert view.rules == ("emergency-alerts",)
        assert view.record["body"]["persons_involved"] is None
        # A name is text a source writes and may hold a number, so it carries tag
        # contact too (issue 15.3) and is pseudonymized like the phone and e-mail.
        assert PSEUDONYM.fullmatch(shown["name"])
        assert shown["name"] != officer["name"]
        assert PSEUDONYM.fullmatch(shown["phone"])
        assert PSEUDONYM.fullmatch(shown["email"])
        tokens.append(shown["phone"])
    assert tokens[0] != tokens[1]
    assert _reasons(decision) == {"upland-transit": WithheldReason.NO_RULE}


def test_public_notices_reach_every_other_agency_with_names_masked_and_contacts_dropped() -> None:
    bulletin = _bulletin("notice", "harbour-watch", path="body.contact")
    decision = COMPILED.evaluate(bulletin)
    assert sorted(v.recipient for v in decision.views) == sorted(
        a for a in AGENCIES if a != "harbour-watch"
    )
    original = bulletin.body["contact"]
    for view in decision.views:
        assert view.rules == ("public-notices",)
        contact = view.record["body"]["contact"]
        assert contact["name"] == "[name withheld]"
        assert contact["phone"] is None
        assert contact["email"] is None
        assert contact["role"] == original["role"]
        for secret in (original["name"], original["phone"], original["email"]):
            assert secret is None or secret not in repr(view)


def test_a_mask_replaces_names_by_its_token_where_no_drop_covers_them() -> None:
    policy = _policy([_rule(redact=[{"tag": "pii", "action": "mask", "token": "[name withheld]"}])])
    compiled = compile_policy(policy, SCHEMA, KEYS)
    bulletin = _bulletin("notice", "north-river", path="body.contact")
    view = _view(compiled.evaluate(bulletin), "vale-fire")
    contact = view.record["body"]["contact"]
    assert contact["name"] == "[name withheld]"
    assert contact["phone"] == "[name withheld]"
    assert contact["role"] == bulletin.body["contact"]["role"]


def test_amber_strict_reaches_only_agencies_named_in_releasable_to_when_rules_use_groups() -> None:
    bulletin = _bulletin("alert", "north-river", Marking.AMBER_STRICT)
    decision = COMPILED.evaluate(bulletin)
    assert decision.views == ()
    assert _reasons(decision) == {
        "harbour-watch": WithheldReason.NOT_NAMED,
        "vale-fire": WithheldReason.NOT_NAMED,
        "saltmarsh-health": WithheldReason.NO_RULE,
        "upland-transit": WithheldReason.NO_RULE,
    }
    assert {w.rules for w in decision.withheld if w.reason is WithheldReason.NOT_NAMED} == {
        ("emergency-alerts",)
    }
    listed = COMPILED.evaluate(
        _bulletin("alert", "north-river", Marking.AMBER_STRICT, releasable_to=("vale-fire",))
    )
    assert [v.recipient for v in listed.views] == ["vale-fire"]
    assert listed.views[0].not_for_forwarding is True
    assert _reasons(listed)["harbour-watch"] is WithheldReason.NOT_NAMED


def test_amber_strict_reaches_an_agency_a_matching_rule_names_by_id() -> None:
    policy = _policy(
        [
            _rule("by-id", recipients={"agencies": ["vale-fire"]}),
            _rule("by-group", recipients={"groups": ["crew"]}),
        ],
        {
            "north-river": {"name": "N"},
            "vale-fire": {"name": "V", "groups": ["crew"]},
            "harbour-watch": {"name": "H", "groups": ["crew"]},
        },
    )
    decision = compile_policy(policy, SCHEMA, KEYS).evaluate(
        _bulletin("alert", "north-river", Marking.AMBER_STRICT)
    )
    assert _view(decision, "vale-fire").rules == ("by-group", "by-id")
    assert _view(decision, "vale-fire").not_for_forwarding is True
    assert _reasons(decision) == {"harbour-watch": WithheldReason.NOT_NAMED}


def test_red_reaches_only_releasable_agencies_even_when_a_rule_names_others() -> None:
    policy = _policy(
        [_rule("red", recipients={"agencies": ["vale-fire", "harbour-watch"]})],
        {a: {"name": a} for a in ("north-river", "vale-fire", "harbour-watch")},
    )
    decision = compile_policy(policy, SCHEMA, KEYS).evaluate(
        _bulletin("alert", "north-river", Marking.RED, releasable_to=("harbour-watch",))
    )
    assert [v.recipient for v in decision.views] == ["harbour-watch"]
    assert decision.views[0].not_for_forwarding is True
    assert _reasons(decision) == {"vale-fire": WithheldReason.NOT_RELEASABLE}


def test_a_rule_never_shares_above_its_max_marking() -> None:
    decision = COMPILED.evaluate(_bulletin("notice", "north-river", Marking.AMBER))
    assert decision.views == ()
    assert set(_reasons(decision).values()) == {WithheldReason.NO_RULE}


def test_exercises_reach_only_agencies_that_accept_them() -> None:
    decision = COMPILED.evaluate(_bulletin("notice", "north-river", status=Status.EXERCISE))
    assert sorted(v.recipient for v in decision.views) == ["harbour-watch", "vale-fire"]
    assert _reasons(decision) == {
        "saltmarsh-health": WithheldReason.STATUS_NOT_ACCEPTED,
        "upland-transit": WithheldReason.STATUS_NOT_ACCEPTED,
    }
    tests = COMPILED.evaluate(_bulletin("notice", "north-river", status=Status.TEST))
    assert [v.recipient for v in tests.views] == ["harbour-watch"]


def test_views_below_amber_strict_may_be_forwarded() -> None:
    decision = COMPILED.evaluate(_bulletin("notice", "north-river", Marking.CLEAR))
    assert decision.views
    assert all(v.not_for_forwarding is False for v in decision.views)


def test_nothing_is_shared_without_a_rule() -> None:
    decision = COMPILED.evaluate(_bulletin("request_for_information", "harbour-watch"))
    assert decision.views == ()
    assert _reasons(decision) == {
        a: WithheldReason.NO_RULE for a in AGENCIES if a != "harbour-watch"
    }


def test_the_source_never_receives_its_own_bulletin() -> None:
    decision = COMPILED.evaluate(_bulletin("notice", "vale-fire"))
    assert decision.view_for("vale-fire") is None
    assert "vale-fire" not in _reasons(decision)
    assert len(decision.views) + len(decision.withheld) == len(AGENCIES) - 1


def test_a_source_outside_the_policy_shares_with_nobody() -> None:
    decision = COMPILED.evaluate(_bulletin("notice", "ghost-agency"))
    assert decision.views == ()
    assert _reasons(decision) == dict.fromkeys(AGENCIES, WithheldReason.UNKNOWN_SOURCE)


def test_a_kind_without_a_schema_is_shared_with_nobody() -> None:
    bulletin = _bulletin("notice", "north-river").model_copy(update={"kind": "weather"})
    decision = COMPILED.evaluate(bulletin)
    assert decision.views == ()
    assert _reasons(decision) == {
        a: WithheldReason.UNKNOWN_KIND for a in AGENCIES if a != "north-river"
    }


def test_transit_questions_go_to_the_county_with_the_asker_dropped_and_the_deadline_a_day() -> None:
    bulletin = _bulletin(
        "request_for_information", "upland-transit", Marking.AMBER, path="body.respond_by"
    )
    decision = COMPILED.evaluate(bulletin)
    assert sorted(v.recipient for v in decision.views) == ["north-river", "vale-fire"]
    body = _view(decision, "vale-fire").record["body"]
    assert body["requested_by"] is None
    deadline = bulletin.body["respond_by"]
    assert body["respond_by"] == deadline.replace(hour=0, minute=0, second=0, microsecond=0)
    assert body["question"] == bulletin.body["question"]


def test_evaluation_leaves_the_bulletin_untouched() -> None:
    bulletin = _bulletin("situation_report", "north-river", Marking.AMBER)
    before = bulletin.model_dump()
    COMPILED.evaluate(bulletin)
    assert bulletin.model_dump() == before


# -- validation: compile-time problems name the rule and the field and say what to do -----


def test_an_unknown_agency_is_named_with_its_rule_and_the_fix() -> None:
    [problem] = _problems(_rule("to-ghost", recipients={"agencies": ["ghost"]}))
    assert "rule 'to-ghost'" in problem
    assert "agency 'ghost' in recipients" in problem
    assert "add it under agencies or fix the id" in problem


def test_an_unknown_group_is_named_with_the_known_groups() -> None:
    [problem] = _problems(_rule("from-ghosts", source={"groups": ["ghosts"]}))
    assert "rule 'from-ghosts'" in problem
    assert "group 'ghosts' in source" in problem
    assert "known groups: (none)" in problem


def test_an_unknown_kind_is_named_with_the_known_kinds() -> None:
    [problem] = _problems(_rule("weather", kinds=["weather"]))
    assert "rule 'weather'" in problem
    assert "kind 'weather'" in problem
    assert "known kinds: alert, notice, request_for_information" in problem


def test_an_unknown_path_is_named_with_the_kinds_the_rule_covers() -> None:
    [problem] = _problems(
        _rule("typo", kinds=["alert"], redact=[{"field": "body.headlin", "action": "drop"}])
    )
    assert "rule 'typo'" in problem
    assert "`body.headlin`" in problem
    assert "(alert)" in problem
    assert "check the path" in problem


def test_an_unknown_tag_is_named_with_the_known_tags() -> None:
    [problem] = _problems(
        _rule("secret", kinds=["alert"], redact=[{"tag": "secret", "action": "drop"}])
    )
    assert "rule 'secret'" in problem
    assert "tag `secret`" in problem
    assert "known tags: contact, free_text, location, pii" in problem


def test_redacting_a_required_field_is_refused_with_the_kind() -> None:
    [problem] = _problems(
        _rule("no-headline", kinds=["alert"], redact=[{"field": "body.headline", "action": "drop"}])
    )
    assert "rule 'no-headline'" in problem
    assert "required field `body.headline` of kind `alert`" in problem
    assert "make the field optional in the schema or remove the redaction" in problem


def test_masking_a_record_is_refused_with_its_shape_and_what_fits() -> None:
    [problem] = _problems(
        _rule(
            "mask-counts",
            kinds=["situation_report"],
            redact=[{"field": "body.casualties", "action": "mask"}],
        )
    )
    assert "rule 'mask-counts'" in problem
    assert "mask `body.casualties`" in problem
    assert "which is record" in problem
    assert "mask, pseudonymize and truncate work on text; use drop for anything" in problem


def test_a_grid_on_text_is_refused_with_what_generalize_takes() -> None:
    [problem] = _problems(
        _rule(
            "grid-text",
            kinds=["situation_report"],
            redact=[{"field": "body.summary", "action": "generalize", "grid_km": 5}],
        )
    )
    assert "rule 'grid-text'" in problem
    assert "generalize `body.summary`" in problem
    assert "which is string" in problem
    assert "grid_km for positions, time_unit for times, bucket for numbers" in problem


def test_a_bucket_on_a_time_is_refused() -> None:
    [problem] = _problems(
        _rule(
            "bucket-time",
            kinds=["alert"],
            redact=[{"field": "body.onset", "action": "generalize", "bucket": 5}],
        )
    )
    assert "rule 'bucket-time'" in problem
    assert "`body.onset`" in problem
    assert "which is timestamp" in problem


def test_a_tag_whose_fields_the_action_does_not_fit_is_refused() -> None:
    [problem] = _problems(
        _rule(
            "trunc-counts",
            kinds=["situation_report"],
            redact=[{"tag": "count", "action": "truncate", "max_chars": 3}],
        )
    )
    assert "rule 'trunc-counts'" in problem
    assert "truncate tag `count`" in problem
    assert "no field with that tag is of a type it fits" in problem


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(PolicyError) as caught:
        compile_policy(
            _policy(
                [
                    _rule("one", recipients={"agencies": ["ghost"]}),
                    _rule("two", kinds=["weather"]),
                ]
            ),
            SCHEMA,
            KEYS,
        )
    assert len(caught.value.problems) == 2
    assert "has 2 problem(s)" in str(caught.value)
    assert all(p in str(caught.value) for p in caught.value.problems)


def test_duplicate_rule_ids_are_refused_by_id() -> None:
    with pytest.raises(PolicyError, match="rule id 'twice' is used twice; rule ids must be unique"):
        _policy([_rule("twice"), _rule("twice")])


def test_generalize_with_two_parameters_is_refused_at_its_location() -> None:
    redact = [{"field": "body.onset", "action": "generalize", "time_unit": "day", "bucket": 2}]
    with pytest.raises(PolicyError) as caught:
        _policy([_rule("two-params", redact=redact)])
    assert "rules.0.redact.0" in str(caught.value)
    assert "generalize takes exactly one of grid_km" in str(caught.value)


def test_a_redaction_with_both_field_and_tag_is_refused() -> None:
    redact = [{"field": "body.description", "tag": "pii", "action": "drop"}]
    with pytest.raises(PolicyError) as caught:
        _policy([_rule("both", redact=redact)])
    assert "rules.0.redact.0" in str(caught.value)
    assert "exactly one of `field` or `tag`" in str(caught.value)


def test_a_selector_that_selects_nothing_is_refused() -> None:
    with pytest.raises(PolicyError, match=r"rules\.0\.source"):
        _policy([_rule("empty", source={})])


def test_an_agency_id_outside_the_topic_alphabet_is_refused() -> None:
    with pytest.raises(PolicyError, match="agency id 'North_River' must match"):
        parse_policy({"version": 1, "agencies": {"North_River": {"name": "N"}}})


def test_unreadable_yaml_is_a_policy_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\nagencies: {north-river: [unclosed\n")
    with pytest.raises(PolicyError, match=r"cannot read policy .*broken\.yaml"):
        load_policy(path)


def test_a_missing_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "absent.yaml")


def test_yaml_that_is_not_a_policy_names_the_bad_location(tmp_path: Path) -> None:
    path = tmp_path / "wrong.yaml"
    path.write_text("version: 0\nagencies: {}\n")
    with pytest.raises(PolicyError, match=r"wrong\.yaml is not a valid policy: version"):
        load_policy(path)


# -- actions -------------------------------------------------------------------------------


def test_drop_nulls_the_value_and_lists_it() -> None:
    value, manifest = _apply("Kara Quinaro", Step(Action.DROP, ("r",)))
    assert value is None
    assert manifest == [AppliedRedaction("f", Action.DROP, "", ("r",))]


def test_mask_replaces_text_and_every_array_element_by_the_token() -> None:
    step = Step(Action.MASK, ("r",), token="[withheld]")
    assert _apply("Kara Quinaro", step)[0] == "[withheld]"
    assert _apply(["Ashfen", "Tarnmoor"], step)[0] == ["[withheld]", "[withheld]"]


def test_pseudonyms_are_keyed_tokens_stable_per_key_and_distinct_across_keys_and_values() -> None:
    step = Step(Action.PSEUDONYMIZE, ("r",))
    first = _apply("Kara Quinaro", step, b"key-one")[0]
    assert PSEUDONYM.fullmatch(first)
    assert _apply("Kara Quinaro", step, b"key-one")[0] == first
    assert _apply("Kara Quinaro", step, b"key-two")[0] != first
    assert _apply("Lio Vosk", step, b"key-one")[0] != first


def test_recipient_keys_differ_per_agency_and_follow_the_master_key() -> None:
    other = RedactionKeys(master=SecretBytes(b"another-master-key"))
    assert KEYS.for_recipient("vale-fire") == KEYS.for_recipient("vale-fire")
    assert KEYS.for_recipient("vale-fire") != KEYS.for_recipient("north-river")
    assert KEYS.for_recipient("vale-fire") != other.for_recipient("vale-fire")
    assert "unit-test-master-key" not in repr(KEYS)


@given(
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    grid_km=st.floats(0.01, 1000),
)
def test_a_grid_snaps_a_position_into_range_within_grid_km_and_stays_put_when_snapped_again(
    lat: float, lon: float, grid_km: float
) -> None:
    step = Step(Action.GENERALIZE, ("r",), grid_km=grid_km)
    point = {"lat": lat, "lon": lon}
    snapped = _apply(point, step)[0]
    assert -90 <= snapped["lat"] <= 90
    assert -180 <= snapped["lon"] <= 180
    assert _haversine_km(point, snapped) <= grid_km
    assert _apply(snapped, step)[0] == snapped


def test_nearby_positions_in_one_cell_become_the_same_position() -> None:
    step = Step(Action.GENERALIZE, ("r",), grid_km=10)
    cells = {
        tuple(_apply({"lat": -47.5 + d, "lon": -30.0 + d}, step)[0].values())
        for d in (0.0, 0.001, 0.002)
    }
    assert len(cells) == 1


def test_a_grid_applies_to_every_corner_of_a_polygon() -> None:
    step = Step(Action.GENERALIZE, ("r",), grid_km=50)
    ring = [
        {"lat": -47.0, "lon": -30.0},
        {"lat": -47.3, "lon": -29.6},
        {"lat": -47.0, "lon": -30.0},
    ]
    snapped = _apply(ring, step)[0]
    assert len(snapped) == 3
    assert snapped[0] == snapped[-1]
    assert all(_haversine_km(a, b) <= 50 for a, b in zip(ring, snapped, strict=True))


def test_hours_and_days_truncate_a_time_and_keep_its_zone() -> None:
    moment = datetime(2031, 3, 14, 17, 42, 9, 123000, tzinfo=UTC)
    hour = _apply(moment, Step(Action.GENERALIZE, ("r",), time_unit="hour"))[0]
    day = _apply(moment, Step(Action.GENERALIZE, ("r",), time_unit="day"))[0]
    assert hour == datetime(2031, 3, 14, 17, tzinfo=UTC)
    assert day == datetime(2031, 3, 14, tzinfo=UTC)
    assert moment - hour < timedelta(hours=1)
    assert moment - day < timedelta(days=1)


@given(value=st.integers(0, 10**6), bucket=st.sampled_from([1.0, 2.0, 5.0, 10.0, 25.0, 100.0]))
def test_a_bucket_rounds_a_count_down_to_a_whole_bucket(value: int, bucket: float) -> None:
    bucketed = _apply(value, Step(Action.GENERALIZE, ("r",), bucket=bucket))[0]
    assert isinstance(bucketed, int)
    assert bucketed % bucket == 0
    assert bucketed <= value < bucketed + bucket


def test_truncate_keeps_at_most_max_chars() -> None:
    step = Step(Action.TRUNCATE, ("r",), max_chars=4)
    assert _apply("Brindlemoor", step)[0] == "Brin"
    assert _apply("Ash", step)[0] == "Ash"
    assert _apply(["Brindlemoor", "Ash"], step)[0] == ["Brin", "Ash"]
    assert _apply("Brindlemoor", Step(Action.TRUNCATE, ("r",), max_chars=0))[0] == ""


def test_a_null_value_stays_null_and_is_not_listed() -> None:
    value, manifest = _apply(None, Step(Action.MASK, ("r",), token="x"))
    assert value is None
    assert manifest == []


def test_a_drop_on_a_record_covers_the_steps_on_its_fields() -> None:
    steps = {
        "person": Step(Action.DROP, ("a",)),
        "person.name": Step(Action.TRUNCATE, ("b",), max_chars=40),
    }
    record = {"person": {"name": "Kara Quinaro", "role": "analyst"}, "other": 1}
    redacted, manifest = apply_steps(record, OpTree.build(steps), b"k")
    assert redacted == {"person": None, "other": 1}
    assert [m.path for m in manifest] == ["person"]
    assert record["person"] == {"name": "Kara Quinaro", "role": "analyst"}, "input unchanged"


def test_steps_under_an_array_apply_to_every_element_and_are_listed_once() -> None:
    steps = {"people.name": Step(Action.MASK, ("r",), token="?")}
    record = {"people": [{"name": "Kara"}, {"name": "Lio"}, {"name": None}]}
    redacted, manifest = apply_steps(record, OpTree.build(steps), b"k")
    assert redacted == {"people": [{"name": "?"}, {"name": "?"}, {"name": None}]}
    assert len(manifest) == 1


# -- combining steps ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weaker", "stronger"),
    [
        (Action.TRUNCATE, Action.GENERALIZE),
        (Action.GENERALIZE, Action.PSEUDONYMIZE),
        (Action.PSEUDONYMIZE, Action.MASK),
        (Action.MASK, Action.DROP),
        (Action.TRUNCATE, Action.DROP),
    ],
)
def test_combining_different_actions_keeps_the_more_restrictive_and_merges_rules(
    weaker: Action, stronger: Action
) -> None:
    a = Step(weaker, ("rule-b",), max_chars=3 if weaker is Action.TRUNCATE else None)
    b = Step(stronger, ("rule-a",), token="x" if stronger is Action.MASK else None)
    for combined in (a.combine(b), b.combine(a)):
        assert combined.action is stronger
        assert combined.rules == ("rule-a", "rule-b")
        assert combined.token == b.token
        assert combined.max_chars is None


def test_the_action_order_runs_from_truncate_to_drop() -> None:
    assert list(Action) == [
        Action.TRUNCATE,
        Action.GENERALIZE,
        Action.PSEUDONYMIZE,
        Action.MASK,
        Action.DROP,
    ]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ({"grid_km": 1.0}, {"grid_km": 10.0}, {"grid_km": 10.0}),
        ({"bucket": 5.0}, {"bucket": 2.0}, {"bucket": 5.0}),
        ({"time_unit": "hour"}, {"time_unit": "day"}, {"time_unit": "day"}),
        ({"time_unit": "hour"}, {"time_unit": "hour"}, {"time_unit": "hour"}),
    ],
)
def test_two_generalizations_keep_the_coarser_parameter(
    first: dict[str, Any], second: dict[str, Any], expected: dict[str, Any]
) -> None:
    a = Step(Action.GENERALIZE, ("a",), **first)
    b = Step(Action.GENERALIZE, ("b",), **second)
    want = Step(Action.GENERALIZE, ("a", "b"), **expected)
    assert a.combine(b) == want
    assert b.combine(a) == want


def test_two_truncations_keep_fewer_characters_and_two_masks_the_smaller_token() -> None:
    cut = Step(Action.TRUNCATE, ("a",), max_chars=10).combine(
        Step(Action.TRUNCATE, ("b",), max_chars=3)
    )
    assert cut == Step(Action.TRUNCATE, ("a", "b"), max_chars=3)
    masked = Step(Action.MASK, ("b",), token="[withheld]").combine(
        Step(Action.MASK, ("a",), token="[redacted]")
    )
    assert masked == Step(Action.MASK, ("a", "b"), token="[redacted]")


def test_step_detail_names_the_parameters() -> None:
    assert Step(Action.GENERALIZE, ("r",), grid_km=10.0).detail == "grid_km=10"
    assert Step(Action.GENERALIZE, ("r",), bucket=2.5).detail == "bucket=2.5"
    assert Step(Action.GENERALIZE, ("r",), time_unit="day").detail == "time_unit=day"
    assert Step(Action.TRUNCATE, ("r",), max_chars=280).detail == "max_chars=280"
    assert Step(Action.MASK, ("r",), token="[secret-token]").detail == ""
    assert Step(Action.DROP, ("r",)).detail == ""


def test_rules_asking_for_the_same_field_are_all_credited_in_the_manifest() -> None:
    policy = _policy(
        [
            _rule(
                "cut", redact=[{"field": "body.description", "action": "truncate", "max_chars": 5}]
            ),
            _rule("hide", redact=[{"tag": "free_text", "action": "mask", "token": "-"}]),
        ]
    )
    bulletin = _bulletin("alert", "north-river", path="body.description")
    view = _view(compile_policy(policy, SCHEMA, KEYS).evaluate(bulletin), "vale-fire")
    assert view.rules == ("cut", "hide")
    assert view.record["body"]["description"] == "-"
    assert _manifest(view)["body.description"] == (Action.MASK, "", ("cut", "hide"))
    assert _manifest(view)["body.instruction"] == (Action.MASK, "", ("hide",))


# -- manifest and View record ----------------------------------------------------------------


def _leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [str(value)] if value is not None else []


def test_the_manifest_lists_path_action_detail_and_rules_and_never_a_value() -> None:
    bulletin = _bulletin(
        "situation_report", "north-river", Marking.AMBER, path="body.reporting_officer"
    )
    view = _view(COMPILED.evaluate(bulletin), "saltmarsh-health")
    entries = [r.avro() for r in view.redactions]
    assert entries
    for entry in entries:
        assert set(entry) == {"path", "action", "detail", "rules"}
        assert entry["action"] in {a.value.upper() for a in Action}
        assert entry["rules"] == ["health-casualties"]
    listed = repr(entries)
    for path in {r.path for r in view.redactions}:
        for original in _leaves(values_at(_record(bulletin), path)):
            if len(original) > 3:  # short numbers may coincide with a detail like bucket=10
                assert original not in listed


def test_a_view_record_is_a_schema_valid_view_with_the_body_as_its_kind() -> None:
    bulletin = _bulletin("situation_report", "north-river", Marking.AMBER)
    view = _view(COMPILED.evaluate(bulletin), "saltmarsh-health")
    record = view.avro(SCHEMA.kinds["situation_report"])
    assert set(record) == {
        "recipient",
        "policy_version",
        "rules",
        "not_for_forwarding",
        "redactions",
        "bulletin",
    }
    assert record["recipient"] == "saltmarsh-health"
    assert record["policy_version"] == POLICY.version
    assert record["rules"] == ["health-casualties"]
    assert record["not_for_forwarding"] is False
    assert record["bulletin"]["body"] == (
        "liaison.bulletin.kind.SituationReport",
        view.record["body"],
    )
    assert record["bulletin"]["marking"] == "AMBER"
    assert validate(record, parse_schema(SCHEMA.catalog.composed(VIEW)), raise_errors=True)


def test_a_compiled_policy_reports_its_version() -> None:
    assert isinstance(COMPILED, CompiledPolicy)
    assert COMPILED.version == POLICY.version
    decision = COMPILED.evaluate(_bulletin("notice", "north-river"))
    assert decision.policy_version == POLICY.version
    assert all(v.policy_version == POLICY.version for v in decision.views)


def test_a_generated_bulletin_from_every_kind_gets_a_decision_for_every_other_agency() -> None:
    generator = BulletinGenerator(SCHEMA, seed=5, agencies=AGENCIES)
    for bulletin in generator.stream(40):
        decision = COMPILED.evaluate(bulletin)
        outcomes = [v.recipient for v in decision.views] + [w.recipient for w in decision.withheld]
        assert sorted(outcomes) == sorted(a for a in AGENCIES if a != bulletin.source_agency)


@pytest.mark.parametrize("bucket", [float("inf"), float("nan"), 5e-324, 0.0, 1e13])
def test_an_unusable_generalize_bucket_is_a_policy_error_not_a_crash(bucket: float) -> None:
    redaction = {"field": "body.casualties.displaced", "action": "generalize", "bucket": bucket}
    with pytest.raises(PolicyError, match="bucket"):
        _policy([_rule(redact=[redaction])])
