"""
Settings shared by every role, with the defaults the issue tracker and the
protocol reference settle on.
"""

from __future__ import annotations

import attrs

from msnp import wire


@attrs.define
class ServerConfig:
    # address written into XFR and RNG replies
    public_host: str = "127.0.0.1"
    dispatch_port: int = 1863
    notification_port: int = 1864
    switchboard_port: int = 1865
    supported_dialects: tuple[int, ...] = tuple(range(2, 8))
    max_line_length: int = wire.DEFAULT_MAX_LINE
    max_payload_length: int = 8192
    list_limits: dict = attrs.Factory(lambda: {"FL": 600, "AL": 1000, "BL": 1000})
    max_groups: int = 30
    max_group_name_bytes: int = 61
    max_phone_bytes: int = 95
    web_url: str = ""
    # switchboard
    cookie_lifetime: float = 120.0
    sb_auth_timeout: float = 60.0
    sb_idle_timeout: float = 300.0
    max_sb_payload: int = wire.MAX_SB_PAYLOAD

    @property
    def dispatch_address(self) -> str:
        return f"{self.public_host}:{self.dispatch_port}"

    @property
    def notification_address(self) -> str:
        return f"{self.public_host}:{self.notification_port}"

    @property
    def switchboard_address(self) -> str:
        return f"{self.public_host}:{self.switchboard_port}"

    @property
    def web_base(self) -> str:
        return self.web_url or f"http://{self.public_host}/"
