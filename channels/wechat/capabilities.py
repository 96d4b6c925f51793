"""What the WeChat Official Account can do, as the core asks it (`core.capabilities`)."""

from datetime import timedelta

from core.capabilities import Capabilities
from core.text_limits import TextLimit

TEXT_LIMIT = TextLimit(2048, "utf8")  # a customer-service text message (45002 past it)
# A customer-service message reaches a learner only within 48 hours of their last message (45015).
REPLY_WINDOW = timedelta(hours=48)

CAPABILITIES = Capabilities(name="wechat", reply_window=REPLY_WINDOW, text_limit=TEXT_LIMIT)
