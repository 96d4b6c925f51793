"""The WeChat channel inside `complaintbot run`: `GET/POST /wechat` for the Official Account's pushes,
and senders built from `[channels.wechat]` and `[departments.*]`.

- `wechat`: replies to learners of the Official Account, when `app_id` and `app_secret` are set. The
  access token is shared by every instance through the database (`channel_state`).
- `wecom-staff`: staff cards and alerts through WeCom group robots, when any robot key is set
  (`[departments.<key>] wecom_robot_key`, `[channels.wechat] wecom_managers_key`). It is offered as a
  fallback: the application takes it as `staff` only where no Telegram chat or e-mail desk took that
  lane, and whether or not the Official Account is configured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.base import Channel, ChannelError, Offer, Started
from channels.wechat.api import SharedAccessToken, WechatClient, token_fetcher
from channels.wechat.capabilities import CAPABILITIES
from channels.wechat.config import WechatConfig
from channels.wechat.sender import WechatSender
from channels.wechat.webhook import WeChatWebhook
from channels.wechat.wecom import WecomStaffSink
from core.context import CoreContext
from core.delivery.outbox import Sender

FIRST_CONTACT = "service"  # its robot stands in for a department without one, and for the managers


def wecom_sink(config: WechatConfig, departments: Mapping[str, Mapping[str, Any]]) -> WecomStaffSink | None:
    """The WeCom staff sink, or None when no robot key is configured."""
    robots = {
        key: str(section["wecom_robot_key"])
        for key, section in departments.items()
        if section.get("wecom_robot_key")
    }
    if config.wecom_managers_key:
        robots["managers"] = config.wecom_managers_key
    if not robots:
        return None
    return WecomStaffSink(robots, default=robots.get(FIRST_CONTACT), robot_url=config.wecom_robot_url)


def wechat_senders(
    config: WechatConfig, departments: Mapping[str, Mapping[str, Any]], core: CoreContext
) -> dict[str, Sender]:
    """`wechat` and `wecom-staff`, each when configured (see the module docstring)."""
    senders: dict[str, Sender] = {}
    if config.app_id and config.app_secret:
        token = SharedAccessToken(
            core.sessions,
            config.app_id,
            token_fetcher(config.app_id, config.app_secret, config.api_base_url),
            vault=core.vault,
        )
        client = WechatClient(config.app_id, config.app_secret, config.api_base_url)
        senders["wechat"] = WechatSender(client, token, template_id=config.template_id)
    sink = wecom_sink(config, departments)
    if sink is not None:
        senders["wecom-staff"] = sink
    return senders


class WechatChannel(Channel):
    name = "wechat"
    capabilities = CAPABILITIES
    config_model = WechatConfig
    config: WechatConfig

    def __init__(self, config: WechatConfig) -> None:
        super().__init__(config)
        self.webhook: WeChatWebhook | None = None

    async def start(self, offer: Offer) -> Started:
        config = self.config
        assert config.token is not None and config.app_id is not None  # the caller checked the channel
        try:
            webhook = WeChatWebhook(
                offer.intake,
                offer.core,
                token=config.token,
                app_id=config.app_id,
                encoding_aes_key=config.encoding_aes_key,
                observer=offer.observer,
            )
            senders = wechat_senders(config, offer.departments, offer.core)
        except ValueError as exc:  # e.g. an EncodingAESKey that is not 43 characters
            raise ChannelError(str(exc)) from exc
        self.webhook = webhook
        senders.pop("wecom-staff", None)  # offered apart: `fallback_staff`
        mode = "safe mode (AES)" if config.encoding_aes_key else "plaintext mode"
        via = f" via {config.api_base_url}" if config.api_base_url else ""
        summary = f"POST /wechat, {mode}; replies{via}"
        return Started(summary, routes=[*webhook.routes("/wechat")], senders=senders)

    async def stop(self) -> None:
        # Intakes still running behind a `success` already answered must finish: WeChat will not
        # deliver those messages again.
        if self.webhook is not None:
            await self.webhook.wait_idle()

    def fallback_staff(self, offer: Offer) -> tuple[Sender, str] | None:
        """Schools whose staff live in WeCom: its group robots."""
        robots = wecom_sink(self.config, offer.departments)
        return (robots, "staff chats: WeCom group robots") if robots is not None else None
