"""Cards: the Node client's CardData, and Miro's REST card body for it.

The client sends `{"id"?, "title", "description"?, "tags"?: [tag titles], "style"?:
{"cardTheme"?, "fillBackground"?}, "fields"?, "taskStatus"?, "boardId"?}`. Miro's REST cards
take `data.title`, `data.description` and `style.cardTheme`; tags are attached after creation
by title (the job queue's work), and the rest has no REST counterpart.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class CardStyle:
    """A card's look; Miro's REST API knows `cardTheme` only (`fillBackground` is dropped)."""

    cardTheme: str | None = None
    fillBackground: bool | None = None


@attrs.frozen
class CardData:
    """A card as the Node client describes it."""

    title: str
    id: str | None = None
    description: str | None = None
    tags: list[str] = attrs.field(factory=list)
    style: CardStyle | None = None
    fields: list[Any] | None = None
    taskStatus: str | None = None
    boardId: str | None = None


def card_body(card: CardData, *, partial: bool = False) -> dict[str, Any]:
    """Miro's card body for a CardData (REST cards have title, description and theme).

    `partial` (an update) leaves out an empty title: the update does not change it.
    """
    data = {
        key: value
        for key, value in (("title", card.title), ("description", card.description))
        if value is not None and not (partial and key == "title" and value == "")
    }
    body: dict[str, Any] = {"data": data}
    if card.style is not None and card.style.cardTheme is not None:
        body["style"] = {"cardTheme": card.style.cardTheme}
    return body
