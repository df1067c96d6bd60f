"""Every table of the product; importing this package registers them on ``SQLModel.metadata``."""

from backend.db.models.identity import (  # noqa: F401
    ApiKey, Community, CommunityRole, DiscordLinkCode, Membership, OAuthToken, PlatformRole, User, UserSession,
)
from backend.db.models.ops import (  # noqa: F401
    AuditEvent, BillingCustomer, PaperAccount, PaperFill, PaperOrder, PaperPosition, PaperQuote, Subscription,
    WebhookEvent, WorkerHeartbeat,
)
from backend.db.models.signals import Follow, Signal, SignalRevision, SignalSource, SignalStatus, SourceKind  # noqa: F401
from backend.db.models.trading import (  # noqa: F401
    FINAL_ORDER_STATUSES, AccountStatus, BrokerAccount, BrokerKind, EquitySnapshot, Fill, Notification, Order,
    OrderEvent, OrderStatus, Position, PositionLot, RealizedPnl, RiskDecisionRecord, RiskProfileRecord,
)
from sqlmodel import SQLModel

metadata = SQLModel.metadata
