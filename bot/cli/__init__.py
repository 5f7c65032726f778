"""The `parley` command: `serve`, `chat` (the terminal conversation) and `usage`."""
