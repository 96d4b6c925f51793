"""The outbound side of WeChat in `complaintbot run`: senders built from `[channels.wechat]` and
`[departments.*]`.

- `wechat`: replies to learners of the Official Account, when `app_id` and `app_secret` are set. The
  access token is shared by every instance through the database (`channel_state`).
- `wecom-staff`: staff cards and alerts through WeCom group robots, when any robot key is set
  (`[departments.<key>] wecom_robot_key`, `[channels.wechat] wecom_managers_key`). It is returned under
  its own name: the composition root registers it as `staff` only where no Telegram chat or e-mail
  desk took that channel, as the e-mail sink does.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.routing import BaseRoute

from bot.app import Application
from bot.config import Settings
from channels.wechat.api import SharedAccessToken, WechatClient, token_fetcher
from channels.wechat.sender import WechatSender
from channels.wechat.webhook import WeChatWebhook
from channels.wechat.wecom import WecomStaffSink
from core.context import CoreContext
from core.outbox import Sender

FIRST_CONTACT = "service"  # its robot stands in for a department without one, and for the managers


def wecom_sink(settings: Settings) -> WecomStaffSink | None:
    """The WeCom staff sink, or None when no robot key is configured."""
    config = settings.channels.wechat
    robots = {key: d.wecom_robot_key for key, d in settings.departments.items() if d.wecom_robot_key}
    if config.wecom_managers_key:
        robots["managers"] = config.wecom_managers_key
    if not robots:
        return None
    return WecomStaffSink(robots, default=robots.get(FIRST_CONTACT), robot_url=config.wecom_robot_url)


def wechat_senders(settings: Settings, core: CoreContext) -> dict[str, Sender]:
    """`wechat` and `wecom-staff`, each when configured (see the module docstring)."""
    config = settings.channels.wechat
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
    sink = wecom_sink(settings)
    if sink is not None:
        senders["wecom-staff"] = sink
    return senders


@dataclass
class WechatRuntime:
    routes: list[BaseRoute]
    summary: str
    webhook: WeChatWebhook

    async def close(self) -> None:
        # Intakes still running behind a `success` already answered must finish: WeChat will not
        # deliver those messages again.
        await self.webhook.wait_idle()


def start_wechat(application: Application, settings: Settings) -> WechatRuntime:
    """`GET/POST /wechat` for the Official Account's pushes, and its sender for replies."""
    config = settings.channels.wechat
    assert config.token is not None and config.app_id is not None  # the caller checked the channel
    webhook = WeChatWebhook(
        application.intake,
        application.core,
        token=config.token,
        app_id=config.app_id,
        encoding_aes_key=config.encoding_aes_key,
        observer=application.metrics,
    )
    senders = wechat_senders(settings, application.core)
    senders.pop("wecom-staff", None)  # registered apart, where no other staff sink took `staff`
    application.dispatcher.senders.update(senders)
    mode = "safe mode (AES)" if config.encoding_aes_key else "plaintext mode"
    via = f" via {config.api_base_url}" if config.api_base_url else ""
    return WechatRuntime([*webhook.routes("/wechat")], f"POST /wechat, {mode}; replies{via}", webhook)
