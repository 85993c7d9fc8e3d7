"""Recognising what a create body drew among Miro's items (in-doubt creates)."""

from __future__ import annotations

from typing import Any

from miro_bridge.miro.fingerprints import fingerprint, matches, pair

SHAPE = {
    "type": "shape",
    "data": {"shape": "rectangle", "content": "Plan"},
    "position": {"x": 10, "y": 20},
    "geometry": {"width": 100, "height": 50},
    "style": {"fillColor": "#ffffff"},
}


def listed(**changes: Any) -> dict[str, Any]:
    """The shape as Miro lists it: its own fields added, `changes` applied to `data`."""
    return {
        "id": "3458764",
        "type": "shape",
        "data": {"shape": "rectangle", "content": "<p>Plan</p>", **changes},
        "position": {"x": 10.0, "y": 20.0, "origin": "center", "relativeTo": "canvas_center"},
        "geometry": {"width": 100.0, "height": 50.0},
        "createdBy": {"id": "u1", "type": "user"},
    }


def test_an_item_matches_the_body_that_drew_it_whatever_markup_miro_adds() -> None:
    assert matches(fingerprint(SHAPE), listed())


def test_another_text_shape_or_place_does_not_match() -> None:
    mark = fingerprint(SHAPE)
    assert not matches(mark, listed(content="Plan B"))
    assert not matches(mark, listed(shape="circle"))
    assert not matches(mark, {**listed(), "position": {"x": 11, "y": 20}})
    assert not matches(mark, {**listed(), "type": "card"})


def test_what_the_body_leaves_to_miro_is_not_compared() -> None:
    card = {"type": "card", "data": {"title": "Task"}}
    shown = {"type": "card", "data": {"title": "Task"}, "position": {"x": 3, "y": 4}}
    assert matches(fingerprint(card), shown)


def test_identical_bodies_take_distinct_items_and_the_rest_stay_unmatched() -> None:
    card = fingerprint({"type": "card", "data": {"title": "Task"}})
    other = fingerprint({"type": "card", "data": {"title": "Other"}})
    items = [
        {"type": "card", "data": {"title": "Task"}},
        {"type": "card", "data": {"title": "Unrelated"}},
        {"type": "card", "data": {"title": "Task"}},
    ]
    assert pair([card, card, card, other], items) == [0, 2, None, None]
