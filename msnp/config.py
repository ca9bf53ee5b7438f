"""
Settings shared by every role, with the defaults the issue tracker and the
protocol reference settle on.
"""

from __future__ import annotations

import attrs

from msnp.msn import wire


@attrs.define
class ServerConfig:
    # address written into XFR and RNG replies
    public_host: str = "127.0.0.1"
    dispatch_port: int = 1863
    notification_port: int = 1864
    switchboard_port: int = 1865
    supported_dialects: tuple[int, ...] = tuple(range(2, 19))
    max_line_length: int = wire.DEFAULT_MAX_LINE
    max_payload_length: int = 8192
    list_limits: dict = attrs.Factory(lambda: {"FL": 600, "AL": 1000, "BL": 1000})
    max_groups: int = 30
    max_group_name_bytes: int = 61
    max_phone_bytes: int = 95
    web_url: str = ""
    # Passport and MSNP6+ challenges (see protocol-notes/passport.md)
    passport_port: int = 0  # where the HTTPS Passport login listens; 0: not running
    passport_ticket_lifetime: float = 300.0  # seconds a Passport ticket may be redeemed
    # seconds a web-service token (address book, storage, offline messages)
    # stays good: clients keep them for the session and cannot renew them
    service_token_lifetime: float = 24 * 3600.0
    # the HTTP gateway (gateway.dll)
    gateway_port: int = 0
    max_gateway_sessions: int = 2000
    max_gateway_buffer: int = 256 * 1024  # bytes waiting for one session's client
    gateway_session_timeout: float = 60.0  # seconds without a request before a session is dropped
    # offline messages kept per account (MSNP13+), and their size
    max_offline_messages: int = 100
    max_offline_bytes: int = 256 * 1024
    max_offline_message_bytes: int = 8192
    md5_login: bool = True  # False refuses MD5 logins (MSNP2-MSNP7)
    challenge_deadline: float = 50.0  # seconds a client has to answer CHL with QRY
    ping_interval: int = 60  # seconds told to MSNP9+ clients in QNG
    # switchboard
    cookie_lifetime: float = 120.0
    sb_auth_timeout: float = 60.0
    sb_idle_timeout: float = 300.0
    max_sb_payload: int = wire.MAX_SB_PAYLOAD
    max_sb_participants: int = 50
    # MSG has its own allowance, never below the command limit: a lively
    # conversation with typing notices and MSNP9+ data messages sends far
    # more than the 20 commands a second a notification client needs.
    sb_message_rate: float = 100.0  # MSG per second, sustained
    sb_message_burst: int = 500  # MSG accepted at once before the rate applies
    # hardening (see protocol-notes/hardening.md)
    # Households, campuses and carrier NAT put many users behind one
    # address; the limit is there so that one address cannot take every
    # file descriptor, not to count people.
    max_connections_per_address: int = 256
    command_rate: float = 20.0  # commands per second, sustained
    command_burst: int = 200  # commands accepted at once before the rate applies
    flood_strikes: int = 20  # refused commands in a row before the connection is closed
    max_outbound_buffer: int = 1024 * 1024  # bytes queued to a client that does not read
    outbound_grace: float = 2.0  # seconds a client may stay over that before it is dropped
    notification_lease: float = 20 * 60.0  # seconds of silence before a connection is dropped
    dispatch_lease: float = 60.0
    challenge_lifetime: float = 300.0  # seconds an MD5 challenge may be answered
    # Failed logins answered without delay: a few typos, or several
    # clients of one person still holding an old password, go unslowed.
    login_failures_per_account: int = 5
    login_failures_per_address: int = 20
    login_failure_window: float = 15 * 60.0
    login_delay_base: float = 1.0  # doubles with every further failure
    # Kept under the time clients and scripts wait for an answer, so a
    # refused login is still answered 911 rather than timing out.
    login_delay_max: float = 10.0
    shutdown_grace: float = 5.0  # seconds to wait for clients to close on shutdown

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
    def passport_site(self) -> str:
        """
        The Passport site's host, with its port unless 443: some clients
        (Twisted's) take the whole text before the path as the host name.
        """
        if self.passport_port == 443:
            return self.public_host
        return f"{self.public_host}:{self.passport_port}"

    @property
    def passport_login_address(self) -> str:
        """
        The Passport login as the nexus names it (no scheme, as the
        original did).
        """
        return f"{self.passport_site}/login2.srf"

    @property
    def web_base(self) -> str:
        return self.web_url or f"http://{self.public_host}/"
