"""The channels the application composes, listed once, in order: adding a channel adds it here."""

from channels.mail.capabilities import CAPABILITIES as MAIL_CAPABILITIES
from channels.telegram.capabilities import CAPABILITIES as TELEGRAM_CAPABILITIES
from channels.voicemail.capabilities import CAPABILITIES as VOICEMAIL_CAPABILITIES
from channels.wechat.capabilities import CAPABILITIES as WECHAT_CAPABILITIES

# What each channel can do, for the core to ask (`core.capabilities`). The order matters where the
# core picks the first that fits: staff are told privately on the first listed that reaches them.
CAPABILITIES = (TELEGRAM_CAPABILITIES, WECHAT_CAPABILITIES, MAIL_CAPABILITIES, VOICEMAIL_CAPABILITIES)
