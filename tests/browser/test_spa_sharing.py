"""examples/spa shares notes, in Chromium: two users, each in a browser context of their own.
Ada shares a note with Bob by the user id on his profile, read-only, then writable, then not at
all; each sees what the other did, and the page shows what Bob may do with her note."""

import re
import uuid
from urllib.parse import urlsplit

import pytest
from spa_page import (
    add_note,
    assert_no_cors_trouble,
    expect,
    is_api_call,
    note_row,
    sign_up,
)

pytestmark = pytest.mark.browser

TITLE = "Plan the trip"
READ_ONLY = "shared with you: read-only"
MAY_EDIT = "shared with you: may edit"


def share_panel(page, title: str):
    """The Share panel of one of the user's own notes, opened."""
    panel = note_row(page, title).locator(".share")
    if panel.get_attribute("open") is None:
        panel.locator("summary").click()
    return panel


def reload_list(page, count: int) -> None:
    page.click("#reload")
    expect(page.locator("#status")).to_have_text(f"Loaded {count} note{'' if count == 1 else 's'}.")


def is_grant_call(method: str, record_id: str, grantee: str = ""):
    path = f"/api/v1/data/notes/{record_id}/grants" + (f"/{grantee}" if grantee else "")
    return is_api_call(method, path)


def test_spa_shares_a_note_read_only_then_writable_then_revokes_it(
    page, browser_log, other_pages, coffer_for_many_log_ins, spa_origin, screenshots
):
    api = coffer_for_many_log_ins.url
    ada, (bob, bob_log) = page, other_pages()
    sign_up(ada, spa_origin, api, name="Ada")
    sign_up(bob, spa_origin, api, name="Bob")
    bob_id = bob.locator("#user-id").inner_text()
    assert str(uuid.UUID(bob_id)) == bob_id
    add_note(bob, "Bob's own")

    created = add_note(ada, TITLE).json()
    mine = note_row(ada, TITLE)
    expect(mine.locator(".access")).to_be_hidden()  # her own note: no badge
    expect(mine.locator(".delete")).to_be_visible()

    # Shared read-only, by the id that Bob's profile shows.
    panel = share_panel(ada, TITLE)
    expect(panel.locator(".no-grants")).to_have_text("Not shared with anyone.")
    panel.locator(".grantee").fill(bob_id)
    expect(panel.locator(".grant-access")).to_have_value("read")
    grantee = f"user:{bob_id}"
    with ada.expect_response(is_grant_call("PUT", created["id"], grantee)) as granted:
        panel.locator(".grant").click()
    expect(ada.locator("#status")).to_have_text(f'{grantee} may read "{TITLE}" now.')
    assert granted.value.status == 200
    assert granted.value.request.post_data_json == {"access": "read"}
    grant = panel.locator(".grants li", has_text=grantee)
    expect(grant.locator(".grant-level")).to_have_value("read")
    expect(panel.locator(".no-grants")).to_be_hidden()
    expect(panel.locator(".grantee")).to_have_value("")
    ada.screenshot(path=screenshots / "spa-share-panel.png")

    # Bob's list (all he may read): his note and hers, which he may only read.
    reload_list(bob, 2)
    theirs = note_row(bob, TITLE)
    expect(theirs.locator(".access")).to_have_text(READ_ONLY)
    expect(theirs.locator(".done")).to_be_disabled()
    expect(theirs.locator(".delete")).to_be_hidden()
    expect(theirs.locator(".share")).to_be_hidden()
    expect(note_row(bob, "Bob's own").locator(".done")).to_be_enabled()
    bob.screenshot(path=screenshots / "spa-shared-read-only.png")

    # The scopes: his own notes, those shared with him, all of them.
    titles = bob.locator("#notes > li .title")
    with bob.expect_response(lambda r: "scope=own" in r.url and "/changes" not in r.url):
        bob.select_option("#scope", "own")
    expect(titles).to_have_text(["Bob's own"])
    bob.select_option("#scope", "shared")
    expect(titles).to_have_text([TITLE])
    expect(bob.locator("#live")).to_have_text("Live")
    bob.select_option("#scope", "all")
    expect(titles).to_have_text([TITLE, "Bob's own"])
    expect(bob.locator("#live")).to_have_text("Live")

    # Writable: Bob ticks it done, and Ada's list shows it without a reload.
    with ada.expect_response(is_grant_call("PUT", created["id"], grantee)) as upgraded:
        grant.locator(".grant-level").select_option("write")
    expect(ada.locator("#status")).to_have_text(f'{grantee} may read and edit "{TITLE}" now.')
    assert upgraded.value.request.post_data_json == {"access": "write"}
    reload_list(bob, 2)
    expect(theirs.locator(".access")).to_have_text(MAY_EDIT)
    theirs.locator(".done").click()
    expect(bob.locator("#status")).to_have_text(f'Marked "{TITLE}" as done.')
    expect(mine.locator(".done")).to_be_checked()
    expect(mine).to_have_class(re.compile(r"\bdone\b"))
    expect(mine.locator(".share")).to_have_attribute("open", "")  # her panel stayed open

    # Read-only again, which Bob's page learns only from the API's 403 on his next write.
    with ada.expect_response(is_grant_call("PUT", created["id"], grantee)):
        grant.locator(".grant-level").select_option("read")
    expect(ada.locator("#status")).to_have_text(f'{grantee} may read "{TITLE}" now.')
    expect(theirs.locator(".done")).to_be_enabled()
    with bob.expect_response(lambda r: r.request.method == "PATCH") as refused:
        theirs.locator(".done").click()
    assert refused.value.status == 403
    expect(bob.locator("#status")).to_have_text(
        f'"{TITLE}" is shared with you read-only: you cannot change it.'
    )
    expect(bob.locator("#status")).to_have_attribute("data-kind", "error")
    expect(theirs.locator(".access")).to_have_text(READ_ONLY)
    expect(theirs.locator(".done")).to_be_disabled()
    expect(theirs.locator(".done")).to_be_checked()  # still done: nothing changed
    expect(mine.locator(".done")).to_be_checked()

    # Revoked: the note leaves Bob's list at his next load.
    with ada.expect_response(is_grant_call("DELETE", created["id"], grantee)) as revoked:
        grant.locator(".revoke").click()
    expect(ada.locator("#status")).to_have_text(f'"{TITLE}" is no longer shared with {grantee}.')
    assert revoked.value.status == 204
    expect(panel.locator(".grants li")).to_have_count(0)
    expect(panel.locator(".no-grants")).to_be_visible()
    reload_list(bob, 1)
    expect(titles).to_have_text(["Bob's own"])

    # An id that is nobody's: the API's 422 detail.
    panel.locator(".grantee").fill(str(uuid.uuid4()))
    with ada.expect_response(lambda r: r.request.method == "PUT") as unknown:
        panel.locator(".grant").click()
    assert unknown.value.status == 422
    expect(ada.locator("#status")).to_contain_text(unknown.value.json()["detail"])
    expect(ada.locator("#status")).to_have_attribute("data-kind", "error")
    assert urlsplit(unknown.value.url).path.startswith(f"/api/v1/data/notes/{created['id']}/")

    assert_no_cors_trouble(browser_log)
    assert_no_cors_trouble(bob_log)
