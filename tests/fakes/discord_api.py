"""A fake Discord for driving the real discord.py client: REST, gateway and CDN on one port.

REST lives under `/api/v10` and answers what the bot and discord.py's start-up call;
the gateway is a websocket at `/gateway` (HELLO, IDENTIFY -> READY and GUILD_CREATE,
heartbeats, RESUME, dispatches on demand); uploaded attachments are served under
`/attachments/`. Every REST call is recorded in `calls`, so tests assert on the wire.

Facts about discord.py 2.7 this fake honours: JSON responses carry exactly
`Content-Type: application/json`; members have `flags`; messages have `mentions`;
interactions have `attachment_size_limit`; the interaction callback answers
`?with_response=1` with an `interaction` object; THREAD_CREATE goes out before any
message in a new thread. Interaction tokens expire like Discord's (15 minutes after the
interaction, or at once via `expire_token`): their webhooks then answer 401 / 50027.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

API = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
TOKEN_LIFETIME = 15 * 60.0
ALL_PERMISSIONS = str((1 << 53) - 1)

Json = dict[str, Any]
BODY = web.RequestKey("body", object)  # the parsed JSON body, read once by the recorder


@dataclass
class Call:
    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    body: Any
    at: float  # loop time


@dataclass
class Session:
    ws: web.WebSocketResponse
    shard: tuple[int, int] = (0, 1)
    seq: int = 0
    identified: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class InteractionRecord:
    id: str
    token: str
    channel_id: str
    guild_id: str | None
    created: float  # wall-clock seconds, like the snowflake it is derived from
    original_id: str | None = None
    expired: bool = False
    modal: Json | None = None  # the form the bot answered with (callback type 9)
    message_id: str | None = None  # the message whose button was pressed


SUPPRESS_EMBEDS = 4  # message flag: no link embeds


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _json(data: Any, status: int = 200) -> web.Response:
    # discord.py refuses "application/json; charset=utf-8" at login.
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"code": code, "message": message}, status)


def _body(request: web.Request) -> Json:
    body = request[BODY]
    return body if isinstance(body, dict) else {}


def _sent_flags(body: Json) -> int:
    """The message flags a send or edit may set (SUPPRESS_EMBEDS, SUPPRESS_NOTIFICATIONS)."""
    return int(body.get("flags") or 0) & (SUPPRESS_EMBEDS | 4096)


def _items(request: web.Request) -> list[Json]:
    body = request[BODY]
    return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []


def _components(rows: Any) -> list[Json]:
    """Message components as Discord checks them: rows of at most 5 buttons, ids ≤ 100."""
    if not isinstance(rows, list) or len(rows) > 5:
        raise ValueError(f"bad components: {rows!r}")
    for row in rows:
        buttons = row.get("components") if isinstance(row, dict) else None
        if row.get("type") != 1 or not isinstance(buttons, list) or not 0 < len(buttons) <= 5:
            raise ValueError(f"bad action row: {row!r}")
        for button in buttons:
            if button.get("type") != 2 or not 0 < len(button.get("custom_id", "")) <= 100:
                raise ValueError(f"bad button: {button!r}")
    return rows


class FakeDiscord:
    def __init__(self, *, bot_name: str = "Parley", token: str = "discord-bot-token") -> None:
        self.token = token
        self._ids = itertools.count(1)
        self.app_id = self.snowflake()
        self.bot_user = self._user(self.app_id, bot_name, bot=True)
        self.users: dict[str, Json] = {self.app_id: self.bot_user}
        self.guilds: dict[str, Json] = {}
        self.channels: dict[str, Json] = {}
        self.messages: dict[str, Json] = {}
        self.interactions: dict[str, InteractionRecord] = {}  # by token
        self.ephemerals: list[Json] = []  # interaction answers only the presser saw
        self._pressers: dict[str, str] = {}  # interaction id -> user id
        self.files: dict[str, tuple[bytes, str]] = {}  # CDN path -> (bytes, content type)
        self.calls: list[Call] = []
        self.identifies: list[Json] = []
        self.resumes: list[Json] = []
        self.sessions: list[Session] = []
        self.recommended_shards = 1
        self.threads_allowed = True  # False: the bot lacks Create Public Threads
        self.member_roles: dict[str, list[str]] = {}  # user id -> role ids, in every guild
        self.reactions: list[tuple[str, str, str]] = []  # (channel, message, emoji) the bot added
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- ids and payloads -------------------------------------------------------------

    def snowflake(self, *, at: float | None = None) -> str:
        ms = int((time.time() if at is None else at) * 1000)
        return str(((ms - DISCORD_EPOCH_MS) << 22) | (next(self._ids) & 0x3FFFFF))

    @staticmethod
    def _user(user_id: str, name: str, *, bot: bool = False) -> Json:
        return {
            "id": user_id,
            "username": name.lower(),
            "global_name": name,
            "discriminator": "0",
            "avatar": None,
            "bot": bot,
            "flags": 0,
            "public_flags": 0,
        }

    def _member(self, user: Json, guild_id: str) -> Json:
        return {
            "user": user,
            "roles": list(self.member_roles.get(user["id"], [])),
            "joined_at": _now_iso(),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
            "pending": False,
            "permissions": ALL_PERMISSIONS,
        }

    # ---- the world the tests set up -----------------------------------------------------

    def add_user(self, name: str, *, bot: bool = False) -> Json:
        user = self._user(self.snowflake(), name, bot=bot)
        self.users[user["id"]] = user
        return user

    def add_guild(self, name: str = "Test Guild", *, shard: tuple[int, int] = (0, 1)) -> str:
        """A guild the bot is in, with an id that lands on `shard` (id, count)."""
        guild_id = self.snowflake()
        shard_id, count = shard
        while (int(guild_id) >> 22) % count != shard_id:
            guild_id = str(int(guild_id) + (1 << 22))  # a millisecond later
        self.guilds[guild_id] = {
            "id": guild_id,
            "name": name,
            "icon": None,
            "owner_id": self.app_id,
            "roles": [
                {
                    "id": guild_id,
                    "name": "@everyone",
                    "permissions": ALL_PERMISSIONS,
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
            ],
            "emojis": [],
            "stickers": [],
            "features": [],
            "member_count": 2,
            "large": False,
            "unavailable": False,
            "joined_at": _now_iso(),
            "voice_states": [],
            "presences": [],
            "threads": [],
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "system_channel_flags": 0,
        }
        return guild_id

    def add_role(self, guild_id: str, name: str) -> str:
        """A role in the guild (give it to people with `member_roles`)."""
        role_id = self.snowflake()
        roles = self.guilds[guild_id]["roles"]
        roles.append({**roles[0], "id": role_id, "name": name, "position": len(roles)})
        return role_id

    def add_text_channel(self, guild_id: str, name: str = "general") -> str:
        channel_id = self.snowflake()
        self.channels[channel_id] = {
            "id": channel_id,
            "type": 0,
            "guild_id": guild_id,
            "name": name,
            "position": len(self.channels),
            "permission_overwrites": [],
            "topic": None,
            "nsfw": False,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "default_auto_archive_duration": 1440,
        }
        return channel_id

    def add_dm(self, user: Json) -> str:
        channel_id = self.snowflake()
        self.channels[channel_id] = {
            "id": channel_id,
            "type": 1,
            "recipients": [user],
            "last_message_id": None,
        }
        return channel_id

    def guild_payload(self, guild_id: str) -> Json:
        guild = dict(self.guilds[guild_id])
        guild["channels"] = [
            c for c in self.channels.values() if c.get("guild_id") == guild_id and c["type"] == 0
        ]
        guild["members"] = [self._member(self.bot_user, guild_id)]
        return guild

    def cdn_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/attachments/{path}"

    def attachment(self, filename: str, content_type: str, data: bytes) -> Json:
        attachment_id = self.snowflake()
        path = f"{attachment_id}/{filename}"
        self.files[path] = (data, content_type)
        url = self.cdn_url(path) + "?ex=expires&is=signed&hm=signature"
        return {
            "id": attachment_id,
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
        }

    # ---- what users do ------------------------------------------------------------------

    def _message(
        self,
        channel_id: str,
        author: Json,
        content: str,
        *,
        mentions: list[Json] | None = None,
        mention_everyone: bool = False,
        attachments: list[Json] | None = None,
        type: int = 0,
        extra: Json | None = None,
    ) -> Json:
        channel = self.channels[channel_id]
        message: Json = {
            "id": self.snowflake(),
            "channel_id": channel_id,
            "author": author,
            "content": content,
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": mention_everyone,
            "mentions": mentions or [],
            "mention_roles": [],
            "attachments": attachments or [],
            "embeds": [],
            "pinned": False,
            "type": type,
            "flags": 0,
            "components": [],
        }
        if "guild_id" in channel:
            message["guild_id"] = channel["guild_id"]
            message["member"] = {
                k: v for k, v in self._member(author, channel["guild_id"]).items() if k != "user"
            }
        message.update(extra or {})
        self.messages[message["id"]] = message
        channel["last_message_id"] = message["id"]
        return message

    async def user_says(self, channel_id: str, author: Json, content: str, **fields: Any) -> Json:
        """A message someone posts (`fields` as for `_message`); dispatched as MESSAGE_CREATE."""
        message = self._message(channel_id, author, content, **fields)
        await self.dispatch("MESSAGE_CREATE", message, guild_id=message.get("guild_id"))
        return message

    async def mention_bot(self, channel_id: str, author: Json, text: str, **fields: Any) -> Json:
        """A message that mentions the bot first, as Discord's autocomplete writes it."""
        return await self.user_says(
            channel_id, author, f"{self.mention()} {text}", mentions=[self.bot_user], **fields
        )

    def mention(self) -> str:
        return f"<@{self.app_id}>"

    async def user_starts_thread(self, channel_id: str, owner: Json, name: str) -> str:
        """A thread a person opened (the bot is not in it yet)."""
        thread = self._thread(channel_id, self.snowflake(), owner["id"], name)
        await self.dispatch("THREAD_CREATE", thread, guild_id=thread["guild_id"])
        return str(thread["id"])

    def _thread(self, parent_id: str, thread_id: str, owner_id: str, name: str) -> Json:
        parent = self.channels[parent_id]
        thread: Json = {
            "id": thread_id,
            "type": 11,
            "guild_id": parent["guild_id"],
            "parent_id": parent_id,
            "owner_id": owner_id,
            "name": name,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": _now_iso(),
                "locked": False,
            },
        }
        self.channels[thread_id] = thread
        return thread

    async def slash(
        self,
        name: str,
        channel_id: str,
        user: Json,
        options: list[Json] | None = None,
        *,
        attachments: list[Json] | None = None,
        created_at: float | None = None,
    ) -> InteractionRecord:
        """A slash command someone runs; dispatched as INTERACTION_CREATE."""
        record = self._new_interaction(channel_id, created_at)
        data: Json = {
            "id": self.snowflake(),
            "name": name,
            "type": 1,
            "options": options or [],
        }
        if attachments:
            data["resolved"] = {"attachments": {a["id"]: a for a in attachments}}
        await self._interact(record, 2, data, user)
        return record

    async def press(self, message: Json, custom_id: str, user: Json) -> InteractionRecord:
        """Someone presses the button `custom_id` under `message` (INTERACTION_CREATE, type 3)."""
        ids = [
            c["custom_id"] for row in message.get("components", []) for c in row["components"]
        ]
        assert custom_id in ids, f"no button {custom_id!r} on the message: {ids}"
        record = self._new_interaction(message["channel_id"])
        record.message_id = message["id"]
        data = {"custom_id": custom_id, "component_type": 2}
        await self._interact(record, 3, data, user, message=message)
        return record

    def _new_interaction(
        self, channel_id: str, created_at: float | None = None
    ) -> InteractionRecord:
        interaction_id = self.snowflake(at=created_at)
        record = InteractionRecord(
            interaction_id,
            f"itoken-{interaction_id}",
            channel_id,
            self.channels[channel_id].get("guild_id"),
            created=time.time() if created_at is None else created_at,
        )
        self.interactions[record.token] = record
        return record

    async def _interact(
        self, record: InteractionRecord, kind: int, data: Json, user: Json, **extra: Json
    ) -> None:
        """Dispatch INTERACTION_CREATE for `record` (2: a command, 3: a component)."""
        channel = self.channels[record.channel_id]
        payload: Json = {
            "id": record.id,
            "application_id": self.app_id,
            "type": kind,
            "data": data,
            "channel_id": record.channel_id,
            "channel": channel,
            "token": record.token,
            "version": 1,
            "app_permissions": ALL_PERMISSIONS,
            "locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": channel.get("guild_id", "0")},
            "attachment_size_limit": 25 * 1024 * 1024,
            **extra,
        }
        self._pressers[record.id] = str(user["id"])
        if "guild_id" in channel:
            payload["guild_id"] = channel["guild_id"]
            payload["guild_locale"] = "en-US"
            payload["member"] = self._member(user, channel["guild_id"])
            payload["context"] = 0
        else:
            payload["user"] = user
            payload["context"] = 1
        await self.dispatch("INTERACTION_CREATE", payload, guild_id=channel.get("guild_id"))

    async def submit_modal(
        self, record: InteractionRecord, user: Json, values: dict[str, str]
    ) -> InteractionRecord:
        """`user` sends the form `record` was answered with: `values` by the field's label."""
        assert record.modal is not None, "the interaction was not answered with a form"
        fields = [
            item
            for row in record.modal["components"]
            for item in ([row["component"]] if row["type"] == 18 else row["components"])
        ]
        rows = [
            {
                "type": 1,
                "components": [
                    {"type": 4, "custom_id": f["custom_id"], "value": values[f["label"]]}
                ],
            }
            for f in fields
            if f.get("label") in values
        ]
        submitted = self._new_interaction(record.channel_id)
        data = {"custom_id": record.modal["custom_id"], "components": rows}
        await self._interact(submitted, 5, data, user)
        return submitted

    def callbacks_to(self, record: InteractionRecord) -> list[Json]:
        """The bodies of the interaction callbacks answering `record`."""
        return [
            c.body
            for c in self.calls
            if c.method == "POST" and c.path == f"/interactions/{record.id}/{record.token}/callback"
        ]

    def expire_token(self, token: str) -> None:
        self.interactions[token].expired = True

    # ---- what tests read ----------------------------------------------------------------

    def channel_messages(self, channel_id: str) -> list[Json]:
        """Messages in a channel, oldest first."""
        found = [m for m in self.messages.values() if m["channel_id"] == channel_id]
        return sorted(found, key=lambda m: int(m["id"]))

    def bot_messages(self, channel_id: str) -> list[Json]:
        return [m for m in self.channel_messages(channel_id) if m["author"]["id"] == self.app_id]

    def threads_of(self, parent_id: str) -> list[Json]:
        return [c for c in self.channels.values() if c.get("parent_id") == parent_id]

    def find_calls(self, method: str, pattern: str) -> list[Call]:
        regex = re.compile(pattern)
        return [c for c in self.calls if c.method == method and regex.fullmatch(c.path)]

    async def wait_until(self, condition: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until `condition()` holds (polled: some changes happen inside the client)."""
        async with asyncio.timeout(within):
            while not condition():  # noqa: ASYNC110 - some conditions change inside discord.py
                await asyncio.sleep(0.01)

    # ---- server -------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record])
        r = app.router
        r.add_get("/gateway", self._gateway)
        r.add_get("/attachments/{path:.+}", self._cdn)
        r.add_get(f"{API}/users/@me", self._me)
        r.add_get(f"{API}/oauth2/applications/@me", self._application)
        r.add_get(f"{API}/gateway/bot", self._gateway_bot)
        r.add_get(f"{API}/gateway", self._gateway_plain)
        r.add_put(f"{API}/applications/{{app}}/commands", self._sync)
        r.add_put(f"{API}/applications/{{app}}/guilds/{{guild}}/commands", self._sync)
        r.add_post(f"{API}/interactions/{{id}}/{{token}}/callback", self._callback)
        r.add_get(f"{API}/webhooks/{{app}}/{{token}}/messages/{{mid}}", self._webhook_get)
        r.add_patch(f"{API}/webhooks/{{app}}/{{token}}/messages/{{mid}}", self._webhook_edit)
        r.add_delete(f"{API}/webhooks/{{app}}/{{token}}/messages/{{mid}}", self._webhook_delete)
        r.add_post(f"{API}/webhooks/{{app}}/{{token}}", self._followup)
        r.add_get(f"{API}/channels/{{cid}}", self._get_channel)
        r.add_get(f"{API}/channels/{{cid}}/messages", self._history)
        r.add_post(f"{API}/channels/{{cid}}/messages", self._create_message)
        r.add_get(f"{API}/channels/{{cid}}/messages/{{mid}}", self._get_message)
        r.add_patch(f"{API}/channels/{{cid}}/messages/{{mid}}", self._edit_message)
        r.add_delete(f"{API}/channels/{{cid}}/messages/{{mid}}", self._delete_message)
        r.add_post(f"{API}/channels/{{cid}}/messages/{{mid}}/threads", self._thread_from_message)
        r.add_post(f"{API}/channels/{{cid}}/threads", self._thread_without_message)
        r.add_post(f"{API}/channels/{{cid}}/typing", self._typing)
        r.add_put(
            f"{API}/channels/{{cid}}/messages/{{mid}}/reactions/{{emoji}}/@me", self._react
        )
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        for session in self.sessions:
            await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if request.path.startswith(API):
            body: Any = None
            if request.can_read_body:
                raw = await request.read()
                body = json.loads(raw) if raw else None
            call = Call(
                request.method,
                request.path[len(API) :],
                dict(request.query),
                body,
                asyncio.get_running_loop().time(),
            )
            self.calls.append(call)
            request[BODY] = body
            # Interactions and their webhooks are authorized by the token in the URL.
            by_bot = not request.path.startswith((f"{API}/interactions/", f"{API}/webhooks/"))
            if by_bot and request.headers.get("Authorization") != f"Bot {self.token}":
                return _error(401, 0, "401: Unauthorized")
        response: web.StreamResponse = await handler(request)
        return response

    # ---- gateway ------------------------------------------------------------------------

    async def dispatch(self, event: str, data: Json, *, guild_id: str | None = None) -> None:
        """Send a DISPATCH to the session whose shard owns `guild_id` (DMs: shard 0)."""
        targets = [s for s in self.sessions if not s.ws.closed and self._owns(s, guild_id)]
        if not targets:
            raise AssertionError(f"no gateway session for {event} (guild {guild_id})")
        for session in targets:
            await self._send_dispatch(session, event, data)

    @staticmethod
    def _owns(session: Session, guild_id: str | None) -> bool:
        shard_id, count = session.shard
        return (0 if guild_id is None else (int(guild_id) >> 22) % count) == shard_id

    async def _send_dispatch(self, session: Session, event: str, data: Json) -> None:
        async with session.lock:
            session.seq += 1
            await session.ws.send_str(
                json.dumps({"op": 0, "t": event, "s": session.seq, "d": data})
            )

    async def reconnect_all(self) -> None:
        """Ask every session to reconnect (op 7), as Discord does on its own deploys."""
        for session in list(self.sessions):
            if not session.ws.closed:
                await session.ws.send_str(json.dumps({"op": 7, "d": None}))

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = Session(ws)
        self.sessions.append(session)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                break
            payload = json.loads(frame.data)
            op, data = payload["op"], payload.get("d")
            if op == 1:
                await ws.send_str(json.dumps({"op": 11}))
            elif op == 2:
                await self._identify(session, data)
            elif op == 6:
                self.resumes.append(data)
                session.seq = int(data.get("seq") or 0)
                await self._send_dispatch(session, "RESUMED", {})
                session.identified.set()
        return ws

    async def _identify(self, session: Session, data: Json) -> None:
        self.identifies.append(data)
        shard = data.get("shard") or [0, 1]
        session.shard = (int(shard[0]), int(shard[1]))
        guilds = [g for g in self.guilds if self._owns(session, g)]
        ready: Json = {
            "v": 10,
            "user": self.bot_user,
            "guilds": [{"id": g, "unavailable": True} for g in guilds],
            "session_id": f"session-{len(self.identifies)}",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": self.app_id, "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        if data.get("shard"):
            ready["shard"] = list(session.shard)
        await self._send_dispatch(session, "READY", ready)
        for guild_id in guilds:
            await self._send_dispatch(session, "GUILD_CREATE", self.guild_payload(guild_id))
        session.identified.set()

    # ---- REST: start-up -----------------------------------------------------------------

    async def _me(self, request: web.Request) -> web.Response:
        return _json(self.bot_user)

    async def _application(self, request: web.Request) -> web.Response:
        return _json(
            {
                "id": self.app_id,
                "name": self.bot_user["global_name"],
                "icon": None,
                "description": "",
                "rpc_origins": [],
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "flags": 0,
                "owner": self.bot_user,
                "team": None,
                "summary": "",
                "interactions_endpoint_url": None,
            }
        )

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return _json(
            {
                "url": self.gateway_url,
                "shards": self.recommended_shards,
                "session_start_limit": limit,
            }
        )

    async def _gateway_plain(self, request: web.Request) -> web.Response:
        return _json({"url": self.gateway_url})

    async def _sync(self, request: web.Request) -> web.Response:
        commands = _items(request)
        return _json(
            [
                {
                    **command,
                    "id": self.snowflake(),
                    "application_id": self.app_id,
                    "version": self.snowflake(),
                    "default_member_permissions": None,
                    "type": command.get("type", 1),
                    "description": command.get("description", ""),
                }
                for command in commands
            ]
        )

    async def _cdn(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["path"])
        if found is None:
            return web.Response(status=404)
        data, content_type = found
        return web.Response(body=data, headers={"Content-Type": content_type})

    # ---- REST: interactions and their webhooks ------------------------------------------

    def _presser(self, record: InteractionRecord) -> str:
        return self._pressers.get(record.id, "")

    def _live(self, token: str) -> InteractionRecord | None:
        record = self.interactions.get(token)
        if record is None or record.expired or time.time() - record.created > TOKEN_LIFETIME:
            return None
        return record

    async def _callback(self, request: web.Request) -> web.Response:
        record = self._live(request.match_info["token"])
        if record is None or record.id != request.match_info["id"]:
            return _error(404, 10062, "Unknown interaction")
        if record.original_id is not None:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        body = _body(request)
        response_type = body["type"]
        data = body.get("data") or {}
        if response_type == 9:  # a modal: nothing is posted, the person sees a form
            if not data.get("custom_id") or not data.get("title") or not data.get("components"):
                return _error(400, 50035, "Invalid Form Body: a modal needs id, title, fields")
            record.original_id, record.modal = "modal", data
            return web.Response(status=204)
        if response_type == 7 and record.message_id in self.messages:  # UPDATE_MESSAGE
            record.original_id = record.message_id
            self._apply_edit(self.messages[record.message_id], data)
            return web.Response(status=204)
        if int(data.get("flags") or 0) & 64:  # only the person who pressed sees it
            record.original_id = ""
            self.ephemerals.append({"user_id": self._presser(record), **data})
            return web.Response(status=204)
        loading = response_type == 5
        message = self._message(
            record.channel_id,
            self.bot_user,
            data.get("content", ""),
            extra={
                "flags": (128 if loading else 0) | int(data.get("flags") or 0),
                "application_id": self.app_id,
                "webhook_id": self.app_id,
                "type": 20,
                "interaction_metadata": {
                    "id": record.id,
                    "type": 2,
                    "user": self.bot_user,
                    "authorizing_integration_owners": {},
                },
            },
        )
        record.original_id = message["id"]
        await self._echo(message)
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        result: Json = {
            "interaction": {
                "id": record.id,
                "type": 2,
                "response_message_id": message["id"],
                "response_message_loading": loading,
                "response_message_ephemeral": bool(int(data.get("flags") or 0) & 64),
            },
            "resource": {"type": response_type},
        }
        if not loading:
            result["resource"]["message"] = message
        return _json(result)

    def _webhook_message(self, request: web.Request) -> tuple[Json | None, web.Response | None]:
        record = self._live(request.match_info["token"])
        if record is None:
            return None, _error(401, 50027, "Invalid Webhook Token")
        mid = request.match_info["mid"]
        message_id = record.original_id if mid == "@original" else mid
        message = self.messages.get(message_id or "")
        if message is None:
            return None, _error(404, 10008, "Unknown Message")
        return message, None

    async def _webhook_get(self, request: web.Request) -> web.Response:
        message, error = self._webhook_message(request)
        return error or _json(message)

    async def _webhook_edit(self, request: web.Request) -> web.Response:
        message, error = self._webhook_message(request)
        if error is not None or message is None:
            return error or _error(404, 10008, "Unknown Message")
        return _json(self._apply_edit(message, _body(request)))

    async def _webhook_delete(self, request: web.Request) -> web.Response:
        message, error = self._webhook_message(request)
        if error is not None or message is None:
            return error or _error(404, 10008, "Unknown Message")
        del self.messages[message["id"]]
        return web.Response(status=204)

    async def _followup(self, request: web.Request) -> web.Response:
        record = self._live(request.match_info["token"])
        if record is None:
            return _error(401, 50027, "Invalid Webhook Token")
        body = _body(request)
        message = self._message(
            record.channel_id,
            self.bot_user,
            body.get("content", ""),
            extra={
                "webhook_id": self.app_id,
                "application_id": self.app_id,
                "flags": _sent_flags(body),
            },
        )
        await self._echo(message)
        return _json(message)

    # ---- REST: channels, messages, threads ----------------------------------------------

    async def _echo(self, message: Json) -> None:
        """The bot's own new messages come back over the gateway, as on Discord."""
        await self.dispatch("MESSAGE_CREATE", message, guild_id=message.get("guild_id"))

    def _apply_edit(self, message: Json, body: Json) -> Json:
        if "content" in body:
            message["content"] = body["content"] or ""
        if "components" in body:
            message["components"] = _components(body["components"])
        flags = _sent_flags(body) if "flags" in body else int(message.get("flags") or 0)
        message["flags"] = flags & ~128  # no longer "thinking"; other flags stay unless sent
        message["edited_timestamp"] = _now_iso()
        return message

    async def _get_channel(self, request: web.Request) -> web.Response:
        channel = self.channels.get(request.match_info["cid"])
        return _json(channel) if channel else _error(404, 10003, "Unknown Channel")

    async def _history(self, request: web.Request) -> web.Response:
        found = self.channel_messages(request.match_info["cid"])
        before = request.query.get("before")
        if before:
            found = [m for m in found if int(m["id"]) < int(before)]
        limit = int(request.query.get("limit", "50"))
        return _json(list(reversed(found))[:limit])  # newest first, like Discord

    async def _create_message(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["cid"]
        if channel_id not in self.channels:
            return _error(404, 10003, "Unknown Channel")
        body = _body(request)
        if not body.get("content"):
            return _error(400, 50006, "Cannot send an empty message")
        if len(body["content"]) > 2000:
            return _error(400, 50035, "Invalid Form Body: content longer than 2000")
        message = self._message(
            channel_id, self.bot_user, body["content"], extra={"flags": _sent_flags(body)}
        )
        message["components"] = _components(body.get("components") or [])
        await self._echo(message)
        return _json(message)

    async def _get_message(self, request: web.Request) -> web.Response:
        message = self.messages.get(request.match_info["mid"])
        return _json(message) if message else _error(404, 10008, "Unknown Message")

    async def _edit_message(self, request: web.Request) -> web.Response:
        message = self.messages.get(request.match_info["mid"])
        if message is None or message["channel_id"] != request.match_info["cid"]:
            return _error(404, 10008, "Unknown Message")
        if message["author"]["id"] != self.app_id:
            return _error(403, 50005, "Cannot edit a message authored by another user")
        body = _body(request)
        if len(body.get("content") or "") > 2000:
            return _error(400, 50035, "Invalid Form Body: content longer than 2000")
        return _json(self._apply_edit(message, body))

    async def _react(self, request: web.Request) -> web.Response:
        channel_id, message_id = request.match_info["cid"], request.match_info["mid"]
        if message_id not in self.messages:
            return _error(404, 10008, "Unknown Message")
        self.reactions.append((channel_id, message_id, request.match_info["emoji"]))
        return web.Response(status=204)

    async def _delete_message(self, request: web.Request) -> web.Response:
        if self.messages.pop(request.match_info["mid"], None) is None:
            return _error(404, 10008, "Unknown Message")
        return web.Response(status=204)

    async def _thread_from_message(self, request: web.Request) -> web.Response:
        channel_id, message_id = request.match_info["cid"], request.match_info["mid"]
        if not self.threads_allowed:
            return _error(403, 50013, "Missing Permissions")
        if message_id not in self.messages:
            return _error(404, 10008, "Unknown Message")
        if message_id in self.channels:
            return _error(400, 160004, "A thread has already been created for this message")
        # A thread started on a message shares the message's id, as on Discord.
        thread = self._thread(channel_id, message_id, self.app_id, _body(request)["name"])
        await self.dispatch(
            "THREAD_CREATE", {**thread, "newly_created": True}, guild_id=thread["guild_id"]
        )
        return _json(thread)

    async def _thread_without_message(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["cid"]
        thread = self._thread(channel_id, self.snowflake(), self.app_id, _body(request)["name"])
        await self.dispatch(
            "THREAD_CREATE", {**thread, "newly_created": True}, guild_id=thread["guild_id"]
        )
        return _json(thread)

    async def _typing(self, request: web.Request) -> web.Response:
        return web.Response(status=204)
