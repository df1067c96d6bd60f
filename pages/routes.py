"""Every route string of the web app, in one place (pages, redirects and links use these)."""

INDEX = "/"
LOGIN = "/login"

TRADER = "/trader"
TRADER_ORDERS = "/trader/orders"
TRADER_POSITIONS = "/trader/positions"
TRADER_PROVIDERS = "/trader/providers"
TRADER_RISK = "/trader/risk"
TRADER_BROKERS = "/trader/brokers"
TRADER_NOTIFICATIONS = "/trader/notifications"

COMMUNITY = "/community"
COMMUNITY_CONSOLE = "/community/console"

ADMIN = "/admin"

# Plain HTTP routes served by app/api.py (not Reflex pages).
HEALTHZ = "/healthz"
READYZ = "/readyz"
TRADINGVIEW_WEBHOOK = "/webhooks/tradingview/{token}"
DISCORD_LOGIN = "/auth/discord/login"
DISCORD_CALLBACK = "/auth/discord/callback"
