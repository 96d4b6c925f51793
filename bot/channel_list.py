"""The channels this build runs, in one place (docs/adding-a-channel.md). No discovery: the order here
is the order `run` starts them in, and an earlier channel's staff lane wins over a later one's.

Each channel's `[channels.<name>]` section is its own config model, named in `bot.config.ChannelsConfig`
(the configuration is read by every command, so it imports the light config models, not the channels).
"""

from __future__ import annotations

from bot.config import ChannelsConfig
from channels.base import Channel
from channels.mail.channel import MailChannel
from channels.telegram.channel import TelegramChannel
from channels.voicemail.channel import VoicemailChannel
from channels.wechat.channel import WechatChannel

CHANNELS: tuple[type[Channel], ...] = (TelegramChannel, WechatChannel, MailChannel, VoicemailChannel)
# What each channel can do, for the core (`core.capabilities.ChannelBook`).
CAPABILITIES = tuple(channel.capabilities for channel in CHANNELS)


def build_channels(config: ChannelsConfig) -> list[Channel]:
    """Every listed channel, each built from its own section (configured or not: `missing()` says)."""
    return [channel(config.section(channel.name)) for channel in CHANNELS]
