"""Usage metering, quotas and reports, on Redis.

`UsageMeter` counts every answer per day and user, channel, workspace and model;
`QuotaLedger` reserves a turn against the policy's daily caps before it runs and settles
it after; `read_usage` reads the counters back for `parley usage` and the admin page.
"""

from bot.usage.governance import Governance
from bot.usage.meter import UsageMeter
from bot.usage.quota import QuotaLedger, Reservation
from bot.usage.report import UsageRow, read_daily_totals, read_usage

__all__ = [
    "Governance",
    "QuotaLedger",
    "Reservation",
    "UsageMeter",
    "UsageRow",
    "read_daily_totals",
    "read_usage",
]
