"""The intake tests run the real engine (Redis, fake model) behind a fake platform."""

from tests.test_engine import engine

__all__ = ["engine"]
