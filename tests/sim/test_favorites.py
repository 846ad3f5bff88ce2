"""Tests for sim.favorites: favourites of every kind and their FV:2 items."""

from __future__ import annotations

from soco.data_structures_entry import from_didl_string

from sonosd.sim.didl import items_didl
from sonosd.sim.favorites import KINDS, default_favorites, favorite_items

UID = "RINCON_000E58A0123401400"


def test_defaults_cover_every_kind() -> None:
    """The demo favourites hold at least one favourite of each kind."""
    favorites = default_favorites(UID, (1, "Morning Mix"))
    assert {f.kind for f in favorites} == set(KINDS)
    containers = [f for f in favorites if f.is_container]
    assert {f.kind for f in containers} == {"sonos_playlist", "album", "service_playlist"}


def test_items_parse_as_soco_favorites_with_references() -> None:
    """Each FV:2 item is a DidlFavorite whose resMD is the referenced object's DIDL."""
    favorites = default_favorites(UID, (3, "A & B"))
    items = from_didl_string(items_didl(favorite_items(favorites)))
    assert [item.title for item in items] == [f.title for f in favorites]
    for item, favorite in zip(items, favorites, strict=True):
        assert item.item_id.startswith("FV:2/")
        assert item.get_uri() == favorite.uri
        assert item.reference.get_uri() == favorite.uri
    playlist = next(i for i, f in zip(items, favorites, strict=True) if f.kind == "sonos_playlist")
    assert playlist.reference.item_id == "SQ:3" and playlist.title == "A & B"
