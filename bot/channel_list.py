"""The channels this build runs, in one place (docs/adding-a-channel.md). No discovery: the order here
is the order `run` starts them in, and where the core picks the first channel that fits (staff are told
privately on the first listed that reaches them, an earlier channel's staff lane wins over a later one's).

Each channel's `[channels.<name>]` section is its own config model, named in `bot.config.ChannelsConfig`
(the configuration is read by every command, so it imports the light config models, not the channels).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.config import ChannelsConfig
from channels.mail.capabilities import CAPABILITIES as MAIL
from channels.telegram.capabilities import CAPABILITIES as TELEGRAM
from channels.voicemail.capabilities import CAPABILITIES as VOICEMAIL
from channels.wechat.capabilities import CAPABILITIES as WECHAT

if TYPE_CHECKING:
    from channels.base import Channel

# What each channel can do, for the core (`core.capabilities.ChannelBook`). Every command composes the
# core, so this list is the channels' light capability modules, in the same order as `channel_classes`.
CAPABILITIES = (TELEGRAM, WECHAT, MAIL, VOICEMAIL)


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
