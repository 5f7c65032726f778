"""A fake Slack: the Web API methods Parley calls, file downloads, and Socket Mode.

It runs on a free loopback port (`api_url` is what `SLACK_API_URL` points at) and keeps
the state a workspace would: messages per channel and thread, open chat streams,
reactions, assistant statuses, users and files. Every Web API call is recorded in
`calls` (method, arguments, token) before anything else, so tests assert on exactly what
the bot sent, and `visible(channel, thread)` is what a person would now see.

Switches that make it behave like a workspace that refuses things:

    fake.refuse_streaming = "method_not_supported_for_channel_type"  # chat.startStream
    fake.stream_lifetime = 2      # Slack ends a stream after 2 appends (~5 min in life)
    fake.refuse_status = "missing_scope"                 # assistant.threads.setStatus
    fake.rate_limit("chat.postMessage", times=1, retry_after=0)   # HTTP 429s
    fake.refuse_task_chunks = "invalid_chunks"  # task_update chunks in the stream methods
    fake.refuse("auth.test", "fatal_error", times=1)     # ok: false with this error
    released = fake.hold("auth.test")  # calls wait (recorded) until `released.set()`

`task_updates` records every `task_update` chunk the bot streamed, in order;
`ephemerals` the messages only one person saw; `block_action()` builds the form body
Slack posts when someone presses a button.

It is strict where Slack is: a bad or missing token is `invalid_auth`, `markdown_text`
(and a message as a whole) is capped at 12,000 characters, a streaming message can't be
edited with chat.update, streaming outside a DM needs the recipient ids, and file
downloads need the bot token (else a redirect to a login page, as Slack does).

`signed_request()` builds an Events API request as Slack signs it (v0 HMAC-SHA256 over
`v0:<timestamp>:<body>` with the signing secret); `push_socket()` delivers an envelope
over Socket Mode and the bot's ack lands in `socket_acks`.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

Json = dict[str, Any]

BOT_TOKEN = "xoxb-fake-bot-token"
APP_TOKEN = "xapp-fake-app-token"
SIGNING_SECRET = "fake-signing-secret"
TEAM_ID = "T0FAKE"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
MARKDOWN_LIMIT = 12_000


@dataclass
class Call:
    method: str
    args: Json
    token: str | None
    at: float = field(default_factory=time.monotonic)


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    user: str
    thread_ts: str | None = None
    bot_id: str | None = None
    streaming: bool = False
    deleted: bool = False
    files: list[Json] = field(default_factory=list)
    markdown: bool = False  # sent as markdown_text, not mrkdwn `text`
    blocks: list[Json] = field(default_factory=list)

    def as_api(self) -> Json:
        data: Json = {"type": "message", "ts": self.ts, "text": self.text, "user": self.user}
        if self.thread_ts:
            data["thread_ts"] = self.thread_ts
        if self.bot_id:
            data["bot_id"] = self.bot_id
        if self.files:
            data["files"] = self.files
        return data


class SlackError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def sign(secret: str, body: str, timestamp: int) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    body: str,
    *,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    content_type: str = "application/json",
    retry_num: int | None = None,
) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(secret, body, ts),
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return headers


class FakeSlack:
    def __init__(
        self,
        *,
        team_id: str = TEAM_ID,
        bot_user_id: str = BOT_USER_ID,
        bot_id: str = BOT_ID,
        bot_token: str = BOT_TOKEN,
        app_token: str = APP_TOKEN,
        signing_secret: str = SIGNING_SECRET,
    ) -> None:
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.refuse_streaming: str | None = None
        self.stream_lifetime: int | None = None
        self.refuse_status: str | None = None
        self.refuse_task_chunks: str | None = None
        self.task_updates: list[Json] = []
        self.calls: list[Call] = []
        self.messages: list[Message] = []
        self.reactions: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
        self.statuses: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        self.suggested_prompts: list[Json] = []
        self.responses: list[Json] = []  # what the bot sent to a slash command's response_url
        self.ephemerals: list[Json] = []  # chat.postEphemeral calls: seen by one user only
        self.views: list[Json] = []  # modals opened with views.open
        self.socket_acks: list[Json] = []
        self.users: dict[str, Json] = {}
        self._files: dict[str, tuple[bytes, str]] = {}
        self._appends: collections.Counter[str] = collections.Counter()
        self._rate_limits: dict[str, collections.deque[int]] = collections.defaultdict(
            collections.deque
        )
        self._refusals: dict[str, collections.deque[str]] = collections.defaultdict(
            collections.deque
        )
        self._holds: dict[str, asyncio.Event] = {}
        self._clock = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.add_user(bot_user_id, "Parley")

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> FakeSlack:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/files-pri/{file_id}/{name}", self._download)
        app.router.add_get("/socket", self._socket)
        app.router.add_post("/response/{id}", self._response_url)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=2048)
        await site.start()
        port = next(a for a in self._runner.addresses if isinstance(a, tuple))[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        for ws in self._sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # -- what tests set up ------------------------------------------------------------

    def add_user(self, user_id: str, display_name: str) -> None:
        self.users[user_id] = {
            "id": user_id,
            "name": display_name.lower().replace(" ", "."),
            "real_name": display_name,
            "profile": {"display_name": display_name, "real_name": display_name},
        }

    def add_message(
        self, channel: str, text: str, *, user: str, thread_ts: str | None = None
    ) -> Message:
        """A message a person wrote (no event is sent; see `event()` for that)."""
        message = Message(channel, self._ts(), text, user, thread_ts)
        self.messages.append(message)
        return message

    def add_file(
        self, name: str, mime: str, data: bytes, *, declared_size: int | None = None
    ) -> Json:
        """A file as it appears in an event's `files[]`, downloadable from the fake."""
        file_id = f"F{len(self._files) + 1:06d}"
        self._files[file_id] = (data, mime)
        url = f"{self.base_url}/files-pri/{self.team_id}-{file_id}/{name}"
        return {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mime,
            "filetype": name.rsplit(".", 1)[-1],
            "size": len(data) if declared_size is None else declared_size,
            "mode": "hosted",
            "url_private": url,
            "url_private_download": url + "?download=1",
        }

    def rate_limit(self, method: str, *, times: int = 1, retry_after: int = 0) -> None:
        """The next `times` calls of `method` get HTTP 429 with this Retry-After."""
        self._rate_limits[method].extend([retry_after] * times)

    def refuse(self, method: str, error: str, *, times: int = 1) -> None:
        """The next `times` calls of `method` answer `ok: false` with `error`."""
        self._refusals[method].extend([error] * times)

    def hold(self, method: str) -> asyncio.Event:
        """Calls of `method` are recorded, then answered only once the event returned is set."""
        released = self._holds[method] = asyncio.Event()
        return released

    # -- events the fake sends to the bot ---------------------------------------------

    def event(
        self,
        event: Json,
        *,
        event_id: str | None = None,
    ) -> Json:
        """An `event_callback` body around `event`."""
        return {
            "token": "legacy-verification-token",
            "team_id": self.team_id,
            "api_app_id": "A0FAKE",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:12].upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": self.team_id, "user_id": self.bot_user_id, "is_bot": True}
            ],
        }

    def person_says(
        self,
        channel: str,
        text: str,
        *,
        user: str,
        thread_ts: str | None = None,
        files: list[Json] | None = None,
        kind: str = "app_mention",
        channel_type: str = "channel",
    ) -> tuple[Message, Json]:
        """A person writes `text`; the message is stored and its event returned."""
        message = self.add_message(channel, text, user=user, thread_ts=thread_ts)
        message.files = files or []
        event: Json = {
            "type": kind,
            "user": user,
            "text": text,
            "ts": message.ts,
            "channel": channel,
            "event_ts": message.ts,
            "team": self.team_id,
        }
        if kind == "message":
            event["channel_type"] = channel_type
        if thread_ts:
            event["thread_ts"] = thread_ts
        if files:
            event["files"] = files
            if kind == "message":
                event["subtype"] = "file_share"
        return message, self.event(event)

    def signed_request(
        self, body: Json | str, *, retry_num: int | None = None, secret: str | None = None
    ) -> tuple[str, dict[str, str]]:
        """A body and headers as Slack would post them to the Events API URL."""
        raw = body if isinstance(body, str) else json.dumps(body)
        content_type = (
            "application/x-www-form-urlencoded" if isinstance(body, str) else "application/json"
        )
        headers = signed_headers(
            raw,
            secret=secret or self.signing_secret,
            content_type=content_type,
            retry_num=retry_num,
        )
        return raw, headers

    def slash_command(self, command: str, text: str, *, user: str, channel: str) -> str:
        """A slash command's form body; its response_url points back at the fake."""
        return urlencode(
            {
                "token": "legacy-verification-token",
                "team_id": self.team_id,
                "channel_id": channel,
                "user_id": user,
                "user_name": user.lower(),
                "command": command,
                "text": text,
                "response_url": f"{self.base_url}/response/{uuid.uuid4().hex}",
                "trigger_id": uuid.uuid4().hex,
                "api_app_id": "A0FAKE",
            }
        )

    def block_action(self, message: Message, action_id: str, value: str, *, user: str) -> str:
        """The form body of a `block_actions` request: `user` pressed a button on `message`."""
        payload = {
            "type": "block_actions",
            "team": {"id": self.team_id},
            "user": {"id": user},
            "api_app_id": "A0FAKE",
            "token": "legacy-verification-token",
            "container": {"type": "message", "message_ts": message.ts},
            "trigger_id": uuid.uuid4().hex,
            "channel": {"id": message.channel},
            "message": {**message.as_api(), "blocks": message.blocks},
            "response_url": f"{self.base_url}/response/{uuid.uuid4().hex}",
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "b1",
                    "value": value,
                    "action_ts": str(time.time()),
                }
            ],
        }
        return urlencode({"payload": json.dumps(payload)})

    async def push_socket(self, payload: Json, *, kind: str = "events_api") -> str:
        """Deliver `payload` over every open Socket Mode connection; the envelope id."""
        envelope_id = uuid.uuid4().hex
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
        }
        for ws in self._sockets:
            await ws.send_str(json.dumps(envelope))
        return envelope_id

    # -- what tests read --------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def bot_messages(
        self, channel: str | None = None, thread_ts: str | None = None
    ) -> list[Message]:
        """The bot's visible messages, oldest first, optionally in one thread."""
        return [
            m
            for m in self.messages
            if m.user == self.bot_user_id
            and not m.deleted
            and (channel is None or m.channel == channel)
            and (thread_ts is None or m.thread_ts == thread_ts)
        ]

    def thread_text(self, channel: str, thread_ts: str | None) -> str:
        """The bot's messages in a thread joined, as a reader would see them in a row."""
        return "".join(m.text for m in self.bot_messages(channel) if m.thread_ts == thread_ts)

    def status(self, channel: str, thread_ts: str) -> str | None:
        history = self.statuses.get((channel, thread_ts))
        return history[-1] if history else None

    async def wait_for(
        self, predicate: Callable[[], object], *, within: float = 10.0, what: str = "condition"
    ) -> None:
        """Poll until `predicate()` holds; fail the test after `within` seconds."""
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        while not predicate():
            if loop.time() > end:
                raise AssertionError(f"fake Slack: timed out waiting for {what}")
            await asyncio.sleep(0.01)

    # -- the Web API ------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: Json = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(dict(await request.post()))
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.get("token")
        self.calls.append(Call(method, args, token))
        if method in self._holds:
            await self._holds[method].wait()
        if self._rate_limits.get(method):
            retry_after = self._rate_limits[method].popleft()
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(retry_after)},
            )
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if self._refusals.get(method):
            return web.json_response({"ok": False, "error": self._refusals[method].popleft()})
        try:
            result: Json = handler(args)
        except SlackError as exc:
            return web.json_response({"ok": False, "error": exc.code})
        return web.json_response({"ok": True, **result})

    @staticmethod
    def _blocks(raw: object) -> list[Json]:
        """Block Kit blocks as Slack checks them (the parts Parley sends)."""
        if raw is None:
            return []
        blocks = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(blocks, list) or len(blocks) > 50:
            raise SlackError("invalid_blocks")
        for block in blocks:
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise SlackError("invalid_blocks")
            if block["type"] == "context_actions":
                elements = block.get("elements")
                if not isinstance(elements, list) or not 0 < len(elements) <= 5:
                    raise SlackError("invalid_blocks")
                for element in elements:
                    if element.get("type") == "feedback_buttons" and not all(
                        isinstance(element.get(side, {}).get("value"), str)
                        and len(element[side]["value"]) <= 2000
                        for side in ("positive_button", "negative_button")
                    ):
                        raise SlackError("invalid_blocks")
        return blocks

    def press_feedback(self, message: Message, *, user: str, positive: bool) -> str:
        """A person presses 👍 or 👎 under `message`: the block_actions form body."""
        element = next(
            e
            for block in message.blocks
            if block["type"] == "context_actions"
            for e in block["elements"]
            if e["type"] == "feedback_buttons"
        )
        button = element["positive_button" if positive else "negative_button"]
        payload = {
            "type": "block_actions",
            "team": {"id": self.team_id, "domain": "fake"},
            "user": {"id": user, "team_id": self.team_id},
            "api_app_id": "A0FAKE",
            "token": "legacy-verification-token",
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": False,
            },
            "trigger_id": uuid.uuid4().hex,
            "channel": {"id": message.channel, "name": "general"},
            "message": message.as_api(),
            "response_url": f"{self.base_url}/response/{uuid.uuid4().hex}",
            "actions": [
                {
                    "type": "feedback_buttons",
                    "action_id": element["action_id"],
                    "block_id": "fb",
                    "value": button["value"],
                    "action_ts": self._ts(),
                }
            ],
        }
        return urlencode({"payload": json.dumps(payload)})

    def _ts(self) -> str:
        n = next(self._clock)
        return f"{1_700_000_000 + n}.{n:06d}"

    def _find(self, channel: str, ts: str) -> Message:
        for message in self.messages:
            if message.channel == channel and message.ts == ts and not message.deleted:
                return message
        raise SlackError("message_not_found")

    @staticmethod
    def _text(args: Json, *, required: bool = True) -> tuple[str, bool]:
        markdown = args.get("markdown_text")
        if markdown is None and args.get("blocks"):  # a markdown block is the message's text
            blocks = FakeSlack._blocks(args["blocks"])
            written = [b.get("text", "") for b in blocks if b["type"] == "markdown"]
            if written:
                if any(not isinstance(t, str) or len(t) > MARKDOWN_LIMIT for t in written):
                    raise SlackError("invalid_blocks")
                return "".join(written), True
        if markdown is None and args.get("chunks"):
            markdown = "".join(
                c.get("text", "") for c in args["chunks"] if c.get("type") == "markdown_text"
            )
        if markdown is not None:
            if len(markdown) > MARKDOWN_LIMIT:
                raise SlackError("msg_too_long")
            if args.get("text") or args.get("blocks"):
                raise SlackError("invalid_arguments")  # markdown_text stands alone
            return str(markdown), True
        text = args.get("text")
        if text is None and required:
            raise SlackError("no_text")
        return str(text or ""), False

    def _tasks(self, args: Json) -> None:
        tasks = [c for c in args.get("chunks") or [] if c.get("type") == "task_update"]
        if tasks and self.refuse_task_chunks:
            raise SlackError(self.refuse_task_chunks)
        self.task_updates.extend(tasks)

    def _bot_post(self, args: Json, text: str, markdown: bool, *, streaming: bool) -> Message:
        channel = str(args.get("channel") or "")
        if not channel:
            raise SlackError("channel_not_found")
        message = Message(
            channel,
            self._ts(),
            text,
            self.bot_user_id,
            args.get("thread_ts") or None,
            self.bot_id,
            streaming=streaming,
            markdown=markdown,
            blocks=list(args.get("blocks") or []),
        )
        self.messages.append(message)
        return message

    def _m_auth_test(self, args: Json) -> Json:
        return {
            "url": "https://fake.slack.test/",
            "team": "Fake Team",
            "user": "parley",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _m_chat_postMessage(self, args: Json) -> Json:
        text, markdown = self._text(args)
        message = self._bot_post(args, text, markdown, streaming=False)
        message.blocks = self._blocks(args.get("blocks"))
        return {"channel": message.channel, "ts": message.ts, "message": message.as_api()}

    def _m_chat_postEphemeral(self, args: Json) -> Json:
        if not args.get("channel") or not args.get("user"):
            raise SlackError("invalid_arguments")
        text, _ = self._text(args)
        self.ephemerals.append({**args, "text": text})
        return {"message_ts": self._ts()}

    def _m_views_open(self, args: Json) -> Json:
        view = json.loads(args["view"]) if isinstance(args.get("view"), str) else args.get("view")
        if not args.get("trigger_id") or not isinstance(view, dict):
            raise SlackError("invalid_arguments")
        if view.get("type") != "modal" or len(view.get("private_metadata", "")) > 3000:
            raise SlackError("invalid_arguments")
        self._blocks(view.get("blocks"))
        view = {**view, "id": f"V{len(self.views)}"}
        self.views.append(view)
        return {"view": view}

    def submit_view(self, view: Json, *, user: str, values: dict[str, str]) -> str:
        """`user` sends the modal `view` with one text per input block: the form body."""
        state = {
            block["block_id"]: {
                block["element"]["action_id"]: {
                    "type": block["element"]["type"],
                    "value": values[block["block_id"]],
                }
            }
            for block in view["blocks"]
            if block["type"] == "input"
        }
        payload = {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": "fake"},
            "user": {"id": user, "team_id": self.team_id},
            "api_app_id": "A0FAKE",
            "token": "legacy-verification-token",
            "trigger_id": uuid.uuid4().hex,
            "view": {**view, "state": {"values": state}, "team_id": self.team_id},
        }
        return urlencode({"payload": json.dumps(payload)})

    def _m_chat_update(self, args: Json) -> Json:
        message = self._find(str(args.get("channel")), str(args.get("ts")))
        if message.streaming:
            raise SlackError("cant_update_message")
        message.text, message.markdown = self._text(args)
        if "blocks" in args:  # as on Slack, an update without blocks keeps them
            message.blocks = self._blocks(args["blocks"])
        return {"channel": message.channel, "ts": message.ts, "text": message.text}

    def _m_chat_delete(self, args: Json) -> Json:
        message = self._find(str(args.get("channel")), str(args.get("ts")))
        message.deleted = True
        return {"channel": message.channel, "ts": message.ts}

    def _m_chat_startStream(self, args: Json) -> Json:
        if self.refuse_streaming:
            raise SlackError(self.refuse_streaming)
        channel = str(args.get("channel") or "")
        if not args.get("thread_ts"):
            raise SlackError("invalid_arguments")
        if not channel.startswith("D") and not (
            args.get("recipient_user_id") and args.get("recipient_team_id")
        ):
            raise SlackError("invalid_arguments")
        self._tasks(args)
        text, _ = self._text(args, required=False)
        message = self._bot_post(args, text, True, streaming=True)
        return {"channel": channel, "ts": message.ts}

    def _streaming(self, args: Json) -> Message:
        message = self._find(str(args.get("channel")), str(args.get("ts")))
        if not message.streaming:
            raise SlackError("message_not_in_streaming_state")
        return message

    def _append(self, message: Message, args: Json) -> None:
        self._tasks(args)
        text, _ = self._text(args, required=False)
        if len(message.text) + len(text) > MARKDOWN_LIMIT:
            raise SlackError("msg_too_long")
        message.text += text

    def _m_chat_appendStream(self, args: Json) -> Json:
        message = self._streaming(args)
        self._appends[message.ts] += 1
        if self.stream_lifetime is not None and self._appends[message.ts] > self.stream_lifetime:
            message.streaming = False  # Slack ended it, as it does after ~5 minutes
            raise SlackError("message_not_in_streaming_state")
        self._append(message, args)
        return {"channel": message.channel, "ts": message.ts}

    def _m_chat_stopStream(self, args: Json) -> Json:
        message = self._streaming(args)
        blocks = self._blocks(args.get("blocks"))  # rendered below the text
        self._append(message, {k: v for k, v in args.items() if k != "blocks"})
        message.blocks.extend(blocks)
        message.streaming = False
        return {"channel": message.channel, "ts": message.ts, "message": message.as_api()}

    def _m_conversations_replies(self, args: Json) -> Json:
        channel, root = str(args.get("channel")), str(args.get("ts"))
        thread = sorted(
            (
                m
                for m in self.messages
                if m.channel == channel and not m.deleted and (m.ts == root or m.thread_ts == root)
            ),
            key=lambda m: float(m.ts),
        )
        if not thread:
            raise SlackError("thread_not_found")
        start = int(args.get("cursor") or 0)
        limit = int(args.get("limit") or 100)
        page = thread[start : start + limit]
        more = start + limit < len(thread)
        return {
            "messages": [m.as_api() for m in page],
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _m_users_info(self, args: Json) -> Json:
        user = self.users.get(str(args.get("user")))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user}

    def _m_reactions_add(self, args: Json) -> Json:
        key = (str(args.get("channel")), str(args.get("timestamp")))
        self._find(*key)
        name = str(args.get("name"))
        if name in self.reactions[key]:
            raise SlackError("already_reacted")
        self.reactions[key].add(name)
        return {}

    def _m_reactions_remove(self, args: Json) -> Json:
        key = (str(args.get("channel")), str(args.get("timestamp")))
        name = str(args.get("name"))
        if name not in self.reactions[key]:
            raise SlackError("no_reaction")
        self.reactions[key].discard(name)
        return {}

    def _m_assistant_threads_setStatus(self, args: Json) -> Json:
        if self.refuse_status:
            raise SlackError(self.refuse_status)
        if not args.get("thread_ts") or "status" not in args:
            raise SlackError("invalid_arguments")
        if len(args.get("loading_messages") or []) > 10:
            raise SlackError("invalid_arguments")
        self.statuses[(str(args["channel_id"]), str(args["thread_ts"]))].append(str(args["status"]))
        return {}

    def _m_assistant_threads_setSuggestedPrompts(self, args: Json) -> Json:
        self.suggested_prompts.append(args)
        return {}

    def _m_apps_connections_open(self, args: Json) -> Json:
        return {"url": self.base_url.replace("http://", "ws://") + "/socket"}

    # -- files, response_url, Socket Mode -------------------------------------------

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}":
            raise web.HTTPFound("/login")  # Slack sends strangers to its sign-in page
        file_id = request.match_info["file_id"].rsplit("-", 1)[-1]
        if file_id not in self._files:
            raise web.HTTPNotFound()
        data, mime = self._files[file_id]
        response = web.StreamResponse(headers={"Content-Type": mime})
        await response.prepare(request)  # chunked: no Content-Length to trust
        for start in range(0, len(data), 64 * 1024):
            await response.write(data[start : start + 64 * 1024])
        await response.write_eof()
        return response

    async def _response_url(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": len(self._sockets)}))
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self.socket_acks.append(json.loads(frame.data))
        finally:
            self._sockets.remove(ws)
        return ws
