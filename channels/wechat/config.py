"""`[channels.wechat]`: the Official Account, and WeCom group robots as a staff lane."""

from __future__ import annotations

from typing import Any, ClassVar

from channels.base import ChannelConfig


class WechatConfig(ChannelConfig):
    # A department's WeCom group robot (its webhook key, a secret).
    department_keys: ClassVar[dict[str, tuple[Any, Any]]] = {"wecom_robot_key": (str | None, None)}
    department_secrets: ClassVar[tuple[str, ...]] = ("wecom_robot_key",)

    token: str | None = None
    app_id: str | None = None
    app_secret: str | None = None
    encoding_aes_key: str | None = None
    api_base_url: str | None = None
    # A template message (first, keyword1 = ticket number, keyword2 = kind, remark = text) sent when a
    # reply can no longer go as a customer-service message (48-hour window closed, 45047 quota).
    template_id: str | None = None
    # WeCom group robots as the staff sink: the managers' robot, and the webhook URL (for tests, a proxy).
    wecom_managers_key: str | None = None
    wecom_robot_url: str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"

    def missing(self) -> str | None:
        absent = [k for k in ("token", "app_id", "app_secret") if not getattr(self, k)]
        return f"no [channels.wechat] {', '.join(absent)}" if absent else None

    def secrets(self) -> list[str | None]:
        return [self.token, self.app_secret, self.encoding_aes_key, self.wecom_managers_key]
