"""Every failure Parley turns into a message for the person in the thread.

Each error knows the sentence a chat user sees (`user_message`): what happened and
what to do. Logs get the technical detail; users never see a stack trace or a secret.

    ParleyError
    ├── UserInputError               the message itself can't be answered as sent
    │   ├── MessageTooLong
    │   ├── TooManyImages
    │   ├── ImageTooLarge
    │   ├── TooManyPixels            an image too big to decode (bomb guard, pixel budget)
    │   ├── UnsupportedImage         not an image, or damaged (bot.media.images)
    │   ├── DownloadError            an attachment couldn't be fetched (bot.media.download)
    │   └── DocumentError            a document couldn't be read (bot.documents); it becomes
    │       │                        a note under the answer, the rest is still answered
    │       ├── DocumentUnsupported  a format Parley does not read
    │       ├── DocumentEncrypted    password-protected
    │       ├── DocumentCorrupt      damaged, or not what its name says
    │       └── DocumentTooComplex   over a safety bound: archive bomb, row/cell cap,
    │                                object loop, time or memory limit
    ├── StoreUnavailable             Redis can't be reached
    ├── PlatformConfigError          a platform's settings can't work (at start-up)
    ├── ToolError                    a tool couldn't do what the model asked (told to the model)
    │   ├── FetchRefused             fetch_url won't fetch that address or response
    │   └── ToolConfigError          the BOT_MCP_CONFIG file is invalid (names the line)
    ├── BotBusy                      the thread's previous answer is still being written
    ├── PolicyFileError              BOT_POLICY_FILE can't be used (for the operator)
    ├── QuotaExceeded                a daily token cap of the policy is reached
    └── LLMError                     the chat-completions API failed
        ├── APIConnectionError       no response (DNS, refused, reset)
        │   └── APITimeoutError      no bytes within the connect / first-token / idle timeout
        ├── StreamInterrupted        the stream broke after text was shown
        ├── EmptyAnswer              the model finished without any text
        ├── ContentRemoved           the model refused a message's content, now left out
        └── APIStatusError           an HTTP error with the API's error body
            ├── BadRequestError          400
            ├── AuthenticationError      401
            ├── QuotaExceededError       402
            ├── PermissionDeniedError    403
            ├── NotFoundError            404
            ├── RequestTooLargeError     413
            ├── RateLimitError           429
            ├── InternalServerError      500
            ├── UpstreamError            502
            └── ServiceUnavailableError  503
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class ParleyError(Exception):
    """Root of Parley's errors."""

    kind = "internal"  # label for metrics

    @property
    def user_message(self) -> str:
        return "Something went wrong on my side while answering. Please try again."


class UserInputError(ParleyError):
    kind = "bad_input"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self._message = message

    @property
    def user_message(self) -> str:
        return self._message


class MessageTooLong(UserInputError):
    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"Your message is {length:,} characters long; I can take up to {limit:,}. "
            "Please shorten it or attach it as a text file."
        )


class TooManyImages(UserInputError):
    def __init__(self, count: int, limit: int) -> None:
        super().__init__(
            f"You attached {count} images; I can look at up to {limit} per message. "
            "Please send them in smaller groups."
        )


class ImageTooLarge(UserInputError):
    def __init__(self, name: str, limit_bytes: int) -> None:
        super().__init__(
            f"The image “{name}” is larger than {limit_bytes // (1024 * 1024)} MB. "
            "Please compress or resize it and send it again."
        )


class TooManyPixels(UserInputError):
    def __init__(self, name: str, width: int, height: int, limit: int) -> None:
        megapixels = f"{limit / 1_000_000:g} megapixel" + ("" if limit == 1_000_000 else "s")
        super().__init__(
            f"The image “{name}” is {width}x{height} pixels; I can take up to {megapixels}. "
            "Please resize it and send it again."
        )


class UnsupportedImage(UserInputError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(
            f"I couldn't read the image “{name}” ({reason}). "
            "PNG, JPEG, WebP, GIF and BMP images work."
        )


class DocumentError(UserInputError):
    kind = "document"


class DocumentUnsupported(DocumentError):
    def __init__(self, name: str, what: str) -> None:
        super().__init__(
            f"I can't read “{name}”: {what}. PDF, Word (.docx), PowerPoint (.pptx), "
            "Excel (.xlsx), CSV, HTML, Markdown, JSON and text files work."
        )


class DocumentEncrypted(DocumentError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"I can't read “{name}”: it is password-protected. "
            "Please send a copy without the password."
        )


class DocumentCorrupt(DocumentError):
    def __init__(self, name: str, what: str = "") -> None:
        what = what or "the file is damaged or not what its name says"
        super().__init__(f"I can't read “{name}”: {what}.")


class DocumentTooComplex(DocumentError):
    def __init__(self, name: str, what: str) -> None:
        super().__init__(f"I didn't read “{name}”: {what}.")


class StoreUnavailable(ParleyError):
    kind = "store_unavailable"

    @property
    def user_message(self) -> str:
        return (
            "I'm temporarily unavailable: my conversation memory can't be reached. "
            "Please try again in a minute."
        )


class PlatformConfigError(ParleyError, ValueError):
    """A platform's settings contradict each other; raised at start-up, for the operator.

    A `ValueError` too, as pydantic and callers checking settings expect.
    """

    kind = "config"


class ToolError(ParleyError):
    """A tool failed; its message goes back to the model as the tool's result."""

    kind = "tool"

    @property
    def user_message(self) -> str:
        return f"A tool failed: {self}"


class FetchRefused(ToolError):
    kind = "fetch_refused"


class ToolConfigError(ToolError):
    kind = "tool_config"

    @property
    def user_message(self) -> str:
        return f"I'm misconfigured: {self}. Please ask the operator to fix BOT_MCP_CONFIG."


class BotBusy(ParleyError):
    kind = "busy"

    @property
    def user_message(self) -> str:
        return (
            "I'm still working on an earlier message in this thread. "
            "Please send this again once that answer is done."
        )


class PolicyFileError(ParleyError):
    """The policy file is missing, unreadable or invalid; `str()` names the line."""

    kind = "policy_file"

    def __init__(self, source: str, line: int | None, problem: str) -> None:
        self.source = source
        self.problems: list[tuple[int | None, str]] = [(line, problem)]
        super().__init__(self._text())

    @classmethod
    def many(cls, source: str, problems: list[tuple[int | None, str]]) -> PolicyFileError:
        error = cls(source, *problems[0])
        error.problems = list(problems)
        error.args = (error._text(),)
        return error

    @property
    def line(self) -> int | None:
        return self.problems[0][0]

    def _text(self) -> str:
        return "\n".join(
            f"{self.source}:{line}: {problem}" if line else f"{self.source}: {problem}"
            for line, problem in self.problems
        )


# Whose daily cap a quota scope is, as a user reads it.
QUOTA_OWNERS = {"user": "your", "channel": "this channel's", "workspace": "this workspace's"}


class QuotaExceeded(ParleyError):
    """A daily cap (`scope` is user, channel or workspace) is used up until `resets_at`."""

    kind = "quota_exceeded"

    def __init__(self, scope: str, used: int, cap: int, resets_at: datetime, now: datetime):
        super().__init__(f"{scope} quota used: {used}/{cap}")
        self.scope = scope
        self.used = used
        self.cap = cap
        self.resets_at = resets_at
        self.now = now

    @property
    def user_message(self) -> str:
        left = max(int((self.resets_at - self.now).total_seconds()), 60)
        hours, minutes = divmod(left // 60, 60)
        wait = f"{hours} h {minutes} min" if hours else f"{minutes} min"
        whose = QUOTA_OWNERS[self.scope].capitalize()
        return (
            f"{whose} daily limit of {self.cap:,} tokens is used up "
            f"({self.used:,} used today). It resets at {self.resets_at:%H:%M} UTC, in {wait}."
        )


class LLMError(ParleyError):
    kind = "llm"

    @property
    def user_message(self) -> str:
        return "The language model failed to answer. Please try again in a moment."


class APIConnectionError(LLMError):
    kind = "connection"

    @property
    def user_message(self) -> str:
        return "I couldn't reach the language model service. Please try again in a moment."


class APITimeoutError(APIConnectionError):
    kind = "timeout"

    @property
    def user_message(self) -> str:
        return "The language model stopped responding. Please try again in a moment."


class StreamInterrupted(LLMError):
    """The stream broke after some of the answer was already shown."""

    kind = "stream_cut"

    @property
    def user_message(self) -> str:
        return "The answer was cut off because the connection to the model broke."


class EmptyAnswer(LLMError):
    kind = "empty_answer"

    @property
    def user_message(self) -> str:
        return "The model finished without writing an answer. Please try rephrasing."


class ContentRemoved(LLMError):
    """The model refused a message's content (`cause`), and what it refused was left out
    of the stored thread, so that later messages, which resend the history, still work."""

    def __init__(self, cause: LLMError, removed: str) -> None:
        super().__init__(f"{cause} ({removed} removed from the history)")
        self.cause = cause
        self.kind = cause.kind
        self.removed = removed

    @property
    def user_message(self) -> str:
        why = self.cause.user_message.rstrip()
        if not why.endswith((".", "!", "?")):
            why += "."  # the API's own words may end without one
        return (
            f"{why} I removed {self.removed} from this thread, so your next message will "
            "work; the rest of what you wrote is kept."
        )


class APIStatusError(LLMError):
    """An HTTP error from the API, with the fields of its error body."""

    status = 0
    kind = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        param: str | None = None,
        fallback_suggestion: str | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"HTTP {status or self.status}: {message}")
        if status is not None:
            self.status = status
        self.api_message = message
        self.type = type
        self.param = param
        self.fallback_suggestion = fallback_suggestion
        self.retry_after = retry_after
        self.body = body

    @property
    def user_message(self) -> str:
        return f"The language model service returned an error ({self.status}). Please try again."


class BadRequestError(APIStatusError):
    status = 400
    kind = "bad_request"

    @property
    def user_message(self) -> str:
        return f"The model rejected the request: {self.api_message}"


class AuthenticationError(APIStatusError):
    status = 401
    kind = "auth"

    @property
    def user_message(self) -> str:
        return (
            "I'm misconfigured: the model service refused my API key. "
            "Please ask the operator to check EVOLINK_API_KEY."
        )


class QuotaExceededError(APIStatusError):
    status = 402
    kind = "quota"

    @property
    def user_message(self) -> str:
        return (
            "The operator's model quota is used up, so I can't answer right now. "
            "Please ask the operator to top up the account."
        )


class PermissionDeniedError(APIStatusError):
    status = 403
    kind = "permission"

    @property
    def user_message(self) -> str:
        return f"The model service denied access: {self.api_message}"


class NotFoundError(APIStatusError):
    status = 404
    kind = "not_found"

    @property
    def user_message(self) -> str:
        return f"The model service couldn't find that: {self.api_message}"


class RequestTooLargeError(APIStatusError):
    status = 413
    kind = "too_large"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.image_name: str | None = None  # the engine names the culprit when it knows

    @property
    def user_message(self) -> str:
        if self.image_name:
            return (
                f"The image “{self.image_name}” is too large for the model (10 MB at most). "
                "Please compress it and resend."
            )
        return "This message is too large for the model."


class RateLimitError(APIStatusError):
    status = 429
    kind = "rate_limit"

    @property
    def user_message(self) -> str:
        return "The model service is rate-limiting me right now. Please try again in a minute."


class InternalServerError(APIStatusError):
    status = 500
    kind = "server_error"

    @property
    def user_message(self) -> str:
        return "The model service had an internal error. Please try again in a moment."


class UpstreamError(APIStatusError):
    status = 502
    kind = "upstream"

    @property
    def user_message(self) -> str:
        return "The model is unavailable upstream right now. Please try again in a moment."


class ServiceUnavailableError(APIStatusError):
    status = 503
    kind = "unavailable"

    @property
    def user_message(self) -> str:
        return "The model service is temporarily unavailable. Please try again in a minute."


STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    cls.status: cls
    for cls in (
        BadRequestError,
        AuthenticationError,
        QuotaExceededError,
        PermissionDeniedError,
        NotFoundError,
        RequestTooLargeError,
        RateLimitError,
        InternalServerError,
        UpstreamError,
        ServiceUnavailableError,
    )
}


def status_error(status: int, message: str, **fields: Any) -> APIStatusError:
    """The typed error for an HTTP status; unknown statuses keep their number."""
    cls = STATUS_ERRORS.get(status)
    if cls is None:
        return APIStatusError(message, status=status, **fields)
    return cls(message, **fields)
