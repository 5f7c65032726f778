"""Platform adapters: each turns one platform's events into the engine's model and posts its answers back."""
