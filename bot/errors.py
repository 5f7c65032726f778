"""Every failure Parley turns into a message for the person in the thread.

Each error knows the sentence a chat user sees (`user_message`): what happened and
what to do. Logs get the technical detail; users never see a stack trace or a secret.

    ParleyError
    ├── UserInputError               the message itself can't be answered as sent
    │   ├── MessageTooLong
    │   ├── TooManyImages
    │   ├── ImageTooLarge
    │   ├── UnsupportedImage
    │   └── DownloadError            an attachment couldn't be fetched (bot.download)
    ├── StoreUnavailable             Redis can't be reached
    ├── ToolError                    a tool couldn't do what the model asked (told to the model)
    │   ├── FetchRefused             fetch_url won't fetch that address or response
    │   └── ToolConfigError          the BOT_MCP_CONFIG file is invalid (names the line)
    ├── BotBusy                      the thread's previous answer is still being written
    └── LLMError                     the chat-completions API failed
        ├── APIConnectionError       no response (DNS, refused, reset)
        │   └── APITimeoutError      no bytes within the connect / first-token / idle timeout
        ├── StreamInterrupted        the stream broke after text was shown
        ├── EmptyAnswer              the model finished without any text
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


class UnsupportedImage(UserInputError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(
            f"I couldn't read the image “{name}” ({reason}). "
            "PNG, JPEG, WebP, GIF and BMP images work."
        )


class StoreUnavailable(ParleyError):
    kind = "store_unavailable"

    @property
    def user_message(self) -> str:
        return (
            "I'm temporarily unavailable: my conversation memory can't be reached. "
            "Please try again in a minute."
        )


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
        what = f"The image “{self.image_name}”" if self.image_name else "An image in this thread"
        return f"{what} is too large for the model (10 MB at most). Please compress it and resend."


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
