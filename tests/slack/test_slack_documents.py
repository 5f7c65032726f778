"""A PDF uploaded in Slack reaches the model with its page numbers, scans as images, and
the footer under the answer says what was read and what was refused."""

from __future__ import annotations

from tests.fakes.documents import encrypted_pdf, pdf
from tests.fakes.llm_server import Reply
from tests.fakes.slack_api import BOT_USER_ID
from tests.slack.conftest import SlackBot, wait_answer

CHANNEL = "C0GENERAL"


async def test_uploaded_pdf_is_read_with_pages_scans_and_refusals(slack_bot: SlackBot) -> None:
    fake = slack_bot.fake
    fake.add_user("U0ALICE", "Alice")
    spec = fake.add_file(
        "spec.pdf",
        "application/pdf",
        pdf(["Overview", "Scope", "The deadline is ORANGE LYNX day.", None]),
    )
    locked = fake.add_file("locked.pdf", "application/pdf", encrypted_pdf())
    slack_bot.llm.enqueue(Reply(text="The deadline is on page 3."))
    message, body = fake.person_says(
        CHANNEL, f"<@{BOT_USER_ID}> when is the deadline?", user="U0ALICE", files=[spec, locked]
    )
    status, _, _ = await slack_bot.post(body)
    assert status == 200
    text = await wait_answer(fake, message.ts, channel=CHANNEL)

    request = slack_bot.llm.requests[-1]
    assert "## Page 3\n\nThe deadline is ORANGE LYNX day." in request.last_user_text
    assert len(request.image_urls) == 1  # the scanned page 4
    assert text.startswith("The deadline is on page 3.")
    assert "“spec.pdf”: 1 scanned page sent as image." in text
    assert "“locked.pdf”: it is password-protected" in text
