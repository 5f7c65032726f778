"""The model client: the chat-completions wire format, streaming, retries and fallbacks."""
