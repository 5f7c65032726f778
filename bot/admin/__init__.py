"""The operators' web page on `parley serve` (`GET /admin`, when `ADMIN_TOKEN` is set)."""

from bot.admin.routes import AdminSite, mount_admin

__all__ = ["AdminSite", "mount_admin"]
