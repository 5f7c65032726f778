"""The admin page's HTML, rendered on the server. Every value from outside is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from bot.admin.chart import bar_chart
from bot.policy import Effective
from bot.usage import UsageRow
from bot.usage.feedback import FeedbackCounts

STYLE = """
:root{color-scheme:light dark;font-family:system-ui,sans-serif}
body{margin:0 auto;max-width:980px;padding:12px;line-height:1.4}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}h3{font-size:.95rem}
form.inline{display:flex;flex-wrap:wrap;gap:8px;align-items:end}
label{display:flex;flex-direction:column;font-size:.85rem}
input,select,button{font-size:1rem;padding:4px 6px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{padding:4px 6px;border-bottom:1px solid #8884;text-align:right}
td{overflow-wrap:break-word}td:first-child{overflow-wrap:anywhere}th{white-space:nowrap}
th:first-child,td:first-child{text-align:left}
.chart{width:100%;height:auto;max-height:260px}
.bar{fill:#3b82f6}.grid{stroke:#8886;stroke-width:1}.axis{font-size:11px;fill:currentColor}
.grid-2{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:12px}
.muted{opacity:.7;font-size:.85rem}.error{color:#dc2626}
.comments{padding-left:1.2rem}.comments li{margin-bottom:.5rem;overflow-wrap:anywhere}
pre{white-space:pre-wrap;word-break:break-word;font-size:.85rem}
"""

DIMENSION_TITLES = {"user": "Top users", "channel": "Top channels", "model": "Top models"}


@dataclass(slots=True)
class Overview:
    since: str
    until: str
    daily: list[UsageRow]
    top: dict[str, list[UsageRow]]
    headroom: list[tuple[str, str, int, int]]  # (place, scope, used, cap)
    outcomes: list[tuple[tuple[str, ...], float]]  # ((platform, outcome), count)
    errors: list[tuple[tuple[str, ...], float]]  # ((type,), count)
    feedback: FeedbackCounts = field(default_factory=FeedbackCounts)
    lookup: str = ""
    lookup_as: str = "channel"
    effective: Effective | None = None
    problems: list[str] = field(default_factory=list)


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def login_page(error: str | None = None) -> str:
    message = f'<p class="error">{escape(error)}</p>' if error else ""
    return _document(
        "Parley admin: sign in",
        "<h1>Parley admin</h1>"
        f"{message}"
        '<form class="inline" method="post" action="/admin/login">'
        '<label>Admin token<input type="password" name="token" autocomplete="current-password"'
        " required></label><button>Sign in</button></form>",
    )


def error_page(message: str) -> str:
    return _document("Parley admin", f'<h1>Parley admin</h1><p class="error">{escape(message)}</p>')


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    if not rows:
        body = f'<tr><td colspan="{len(header)}" class="muted">nothing yet</td></tr>'
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def _usage_table(title: str, rows: Sequence[UsageRow]) -> str:
    return (
        f"<section><h2>{escape(title)}</h2>"
        + _table(
            ["", "requests", "tokens", "cost (USD)"],
            [(r.key, f"{r.requests:,}", f"{r.tokens:,}", f"{r.cost_usd:,.4f}") for r in rows],
        )
        + "</section>"
    )


def _effective(overview: Overview) -> str:
    found = overview.effective
    if found is None:
        return ""
    persona, quota = found.persona, found.quota
    generation = persona.generation.as_request_fields()
    rows = [
        ("layers", " → ".join(found.layers)),
        ("allowed", "yes" if found.decision.allowed else f"no ({found.decision.reason})"),
        ("model", persona.model),
        ("tools", ", ".join(persona.tools.patterns) or "none"),
        ("tools needing approval", ", ".join(persona.approve_tools.patterns) or "none"),
        ("show reasoning", "yes" if persona.show_reasoning else "no"),
        ("allow mentions", "yes" if persona.allow_mentions else "no"),
        ("generation", ", ".join(f"{k}={v}" for k, v in generation.items()) or "defaults"),
        (
            "daily caps (user / channel / workspace)",
            " / ".join(
                f"{cap:,}" if cap else "none"
                for cap in (quota.user, quota.channel, quota.workspace)
            ),
        ),
        ("quota day starts", f"{quota.reset_hour_utc:02d}:00 UTC"),
        (
            "downgrade",
            f"{quota.downgrade_model} from {quota.downgrade_at:.0%}"
            if quota.downgrade_model
            else "none",
        ),
    ]
    return (
        _table(["field", "value"], rows)
        + f"<h3>System prompt</h3><pre>{escape(persona.system_prompt)}</pre>"
    )


def _feedback(counts: FeedbackCounts) -> str:
    tables = "".join(
        f"<section><h3>By {kind}</h3>"
        + _table(
            [kind, "up", "down"],
            [(label, f"{up:,}", f"{down:,}") for label, up, down in counts.rows(kind)],
        )
        + "</section>"
        for kind in ("model", "persona")
    )
    comments = "".join(
        f'<li><span class="muted">{escape(c["at"][:16].replace("T", " "))} · '
        f"{escape(c['rating'])} · {escape(c['channel'])} · {escape(c['model'])}</span><br>"
        f"{escape(c['comment'])}</li>"
        for c in counts.comments
    )
    return (
        f'<section><h2>Feedback</h2><div class="grid-2">{tables}</div>'
        f"<h3>What went wrong (newest first)</h3>"
        f'<ul class="comments">{comments or "<li class=muted>nothing yet</li>"}</ul></section>'
    )


def admin_page(overview: Overview) -> str:
    days = [(row.key, float(row.tokens)) for row in overview.daily]
    costs = [(row.key, row.cost_usd) for row in overview.daily]
    total_tokens = sum(row.tokens for row in overview.daily)
    total_cost = sum(row.cost_usd for row in overview.daily)
    query = f"since={escape(overview.since)}&amp;until={escape(overview.until)}"
    range_form = (
        '<form class="inline" method="get" action="/admin">'
        f'<label>From<input type="date" name="since" value="{escape(overview.since)}"></label>'
        f'<label>To<input type="date" name="until" value="{escape(overview.until)}"></label>'
        "<button>Show</button>"
        f' <a href="/admin/usage.csv?{query}">CSV</a> <a href="/admin/usage.json?{query}">JSON</a>'
        "</form>"
    )
    problems = "".join(f'<p class="error">{escape(p)}</p>' for p in overview.problems)
    options = "".join(
        f'<option value="{kind}"{" selected" if kind == overview.lookup_as else ""}>{kind}</option>'
        for kind in ("channel", "user", "workspace")
    )
    lookup_form = (
        '<form class="inline" method="get" action="/admin">'
        f'<input type="hidden" name="since" value="{escape(overview.since)}">'
        f'<input type="hidden" name="until" value="{escape(overview.until)}">'
        '<label>Channel or user, as "platform:id"'
        f'<input name="place" value="{escape(overview.lookup)}" placeholder="slack:C0123"></label>'
        f'<label>is a<select name="as">{options}</select></label><button>Look up</button></form>'
    )
    body = [
        "<h1>Parley admin</h1>",
        range_form,
        problems,
        f"<p>{overview.since} to {overview.until}: <strong>{total_tokens:,}</strong> tokens, "
        f"<strong>${total_cost:,.2f}</strong></p>",
        '<div class="grid-2"><section><h2>Tokens per day</h2>',
        bar_chart("Tokens per day", days, lambda v: f"{v:,.0f}"),
        "</section><section><h2>Cost per day (USD)</h2>",
        bar_chart("Cost per day (USD)", costs, lambda v: f"${v:,.2f}"),
        "</section></div>",
        '<div class="grid-2">',
        *(_usage_table(DIMENSION_TITLES[d], rows) for d, rows in overview.top.items()),
        "</div>",
        "<section><h2>Quota headroom (today)</h2>",
        _table(
            ["", "cap", "used", "left"],
            [
                (f"{place} ({scope})", f"{cap:,}", f"{used:,}", f"{max(cap - used, 0):,}")
                for place, scope, used, cap in overview.headroom
            ],
        ),
        "</section>",
        '<div class="grid-2"><section><h2>Answers (this replica, since it started)</h2>',
        _table(
            ["platform", "outcome", "count"],
            [(*labels, f"{c:,.0f}") for labels, c in overview.outcomes],
        ),
        "</section><section><h2>Errors (this replica)</h2>",
        _table(["type", "count"], [(*labels, f"{c:,.0f}") for labels, c in overview.errors]),
        "</section></div>",
        _feedback(overview.feedback),
        "<section><h2>Effective policy</h2>",
        lookup_form,
        _effective(overview),
        "</section>",
    ]
    return _document("Parley admin", "".join(body))
