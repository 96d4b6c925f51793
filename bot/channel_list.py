"""The channels this build runs, in one place (docs/adding-a-channel.md). No discovery: the order here
is the order `run` starts them in, and where the core picks the first channel that fits (staff are told
privately on the first listed that reaches them, an earlier channel's staff lane wins over a later one's).

Each channel is listed twice: its light half (what it can do, for the core; its `[channels.<name>]` model,
for the configuration every command reads) and the channel itself, imported only by what runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from channels.base import ChannelConfig
from channels.mail.capabilities import CAPABILITIES as MAIL
from channels.mail.config import EmailConfig
from channels.telegram.capabilities import CAPABILITIES as TELEGRAM
from channels.telegram.config import TelegramConfig
from channels.voicemail.capabilities import CAPABILITIES as VOICEMAIL
from channels.voicemail.config import VoicemailConfig
from channels.wechat.capabilities import CAPABILITIES as WECHAT
from channels.wechat.config import WechatConfig
from core.capabilities import Capabilities

if TYPE_CHECKING:
    from bot.config import ChannelsConfig
    from channels.base import Channel

# Each channel's light half, in the order of `channel_classes`: what it can do, for the core
# (`core.capabilities.ChannelBook`), and the model of its `[channels.<name>]` section (`bot.config`).
# Every command reads the configuration and composes the core, so only light modules are named here.
LIGHT: tuple[tuple[Capabilities, type[ChannelConfig]], ...] = (
    (TELEGRAM, TelegramConfig),
    (WECHAT, WechatConfig),
    (MAIL, EmailConfig),
    (VOICEMAIL, VoicemailConfig),
)
CAPABILITIES = tuple(capabilities for capabilities, _ in LIGHT)
SECTIONS = {capabilities.name: model for capabilities, model in LIGHT}


def channel_classes() -> tuple[type[Channel], ...]:
    """The channels themselves, in the order of `CAPABILITIES`: imported only by what runs them, since
    they load their platforms' client libraries."""
    from channels.mail.channel import MailChannel
    from channels.telegram.channel import TelegramChannel
    from channels.voicemail.channel import VoicemailChannel
    from channels.wechat.channel import WechatChannel

    return (TelegramChannel, WechatChannel, MailChannel, VoicemailChannel)


def build_channels(config: ChannelsConfig) -> list[Channel]:
    """Every listed channel, each built from its own section (configured or not: `missing()` says)."""
    return [channel(config.section(channel.name)) for channel in channel_classes()]
