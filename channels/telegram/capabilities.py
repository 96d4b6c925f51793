"""What Telegram can do, as the core asks it (`core.capabilities`)."""

from core.capabilities import Capabilities
from core.text_limits import TextLimit

# Telegram counts a message's 4,096 characters in UTF-16 code units. A longer text goes in parts
# (the dispatcher splits it); a card, which is edited in place, is shortened instead.
TEXT_LIMIT = TextLimit(4096, "utf16")

CAPABILITIES = Capabilities(
    name="telegram",
    buttons=True,
    staff_address="telegram_id",  # staff work from Telegram: a private chat reaches each member
    text_limit=TEXT_LIMIT,
)
