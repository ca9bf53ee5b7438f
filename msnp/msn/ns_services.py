"""
The notification server's small service commands, each answered on its own:
URL (a page of the operator's web site, MSNP2+), FND and SND (the member
directory and invitations by e-mail, MSNP2+ and MSNP2–4, both switched
off), IMS (switchboard invitations on and off, MSNP3+), SDC (an invitation
e-mail, MSNP5+), PAG and PGD (pages to mobile devices, MSNP5–8 and MSNP9+,
accepted by nobody) and GCF (the shields configuration, MSNP11–12).

L{ServiceCommands} is mixed into L{msnp.msn.notification.NotificationSession}.
"""

from __future__ import annotations

from msnp.msn import dialects, errors, wire
from msnp.msn.errors import CloseConnection, CommandError

# URL services and the path they lead to on the operator's web site.
_URL_SERVICES = {
    "INBOX": "inbox",
    "COMPOSE": "compose",
    "PASSWORD": "password",
    "MESSAGE": "message",
    "FOLDERS": "folders",
    "PERSON": "person",
    "MOBILE": "mobile",
    "CHGMOB": "mobile",
    "PROFILE": "profile",
    "N2PACCOUNT": "n2paccount",
    "N2PFUND": "n2pfund",
    "CHAT": "chat",
    "ADDRBOOK": "addressbook",
    "ADVSEARCH": "search",
    "INTSEARCH": "search",
}


class ServiceCommands:
    """
    URL, FND, SND, IMS, SDC, PAG, PGD and GCF for a logged-in
    L{msnp.msn.notification.NotificationSession} (its C{me}, C{dialect},
    C{messenger}, C{config}, C{synced} and C{send}).
    """

    # Web pages (MSNP2+)

    def do_URL(self, command):
        if not command.args:
            raise CommandError(errors.INVALID_PARAMETER)
        path = _URL_SERVICES.get(command.args[0].upper())
        if path is None:
            raise CommandError(errors.INVALID_PARAMETER)
        site = (2,) if self.dialect.has_url_site_id else ()
        self.send(wire.format_line("URL", command.trid, "/" + path, self.config.web_base, *site))

    # The member directory and invitations by e-mail

    def do_FND(self, command):
        # The member directory was switched off in April 2003; this is what
        # the service answered from then on.
        raise CommandError(errors.COMMAND_DISABLED)

    def do_SND(self, command):
        # The target is an e-mail address or an FND result's index.
        args = command.args
        if not args or len(args) > 4 or not ("@" in args[0] or args[0].isdigit()):
            raise CommandError(errors.GENERIC_FAILURE)
        # Invitations by e-mail need a mail relay this server does not have.
        raise CommandError(errors.COMMAND_DISABLED)

    # Switchboard invitations on and off (MSNP3+)

    def do_IMS(self, command):
        if len(command.args) != 1 or command.args[0] not in ("ON", "OFF"):
            raise CommandError(errors.INVALID_PARAMETER)
        self.messenger.presence.set_accepts_invitations(self.me, command.args[0] == "ON")
        self.send(wire.format_line("IMS", command.trid, 0, command.args[0]))

    def do_SDC(self, command):
        """
        C{SDC t target lcid library client-id X X name length} + text: an
        invitation e-mail.  As with SND, there is no mail relay to send it.
        """
        if len(command.args) != dialects.SDC_PARAMETERS:
            raise CommandError(errors.GENERIC_FAILURE, "malformed SDC", close=True)
        raise CommandError(errors.COMMAND_DISABLED)

    # Pages to mobile devices (PAG MSNP5-8, PGD MSNP9+)

    def do_PAG(self, command):
        """
        C{PAG t handle length} + page (MSNP5-8): a text to a contact's
        mobile device.  There is no mobile gateway, so nobody accepts pages.
        """
        if len(command.args) != 1:
            raise CommandError(errors.INVALID_PARAMETER)
        return self._page(command.args[0])

    def do_PGD(self, command):
        """
        C{PGD t handle device length} + page (MSNP9+): as PAG, to a mobile
        device (1) or a Web Watch (2).
        """
        if len(command.args) != 2:
            raise CommandError(errors.INVALID_PARAMETER)
        handle, device = command.args
        if not device.isdigit():
            raise CloseConnection("PGD device type is not a number")
        if device not in dialects.PAGE_DEVICES:
            raise CommandError(errors.INVALID_PARAMETER)
        return self._page(handle)

    def _page(self, handle: str):
        if not wire.is_valid_handle(handle):
            raise CommandError(errors.INVALID_PARAMETER)
        raise CommandError(errors.NOT_ACCEPTING_PAGES)

    # Configuration files (MSNP11-12)

    def do_GCF(self, command):
        """
        C{GCF t Shields.xml} (MSNP11-12) → the shields configuration, once
        the client has sent SYN.
        """
        if len(command.args) != 1:
            raise CommandError(errors.INVALID_PARAMETER)
        if not self.synced:
            raise CommandError(errors.NOT_EXPECTED, "GCF before SYN")
        if command.args[0] != dialects.SHIELDS_FILE:
            raise CommandError(errors.INVALID_PARAMETER)
        self.send(self.dialect.config_file(command.trid, dialects.SHIELDS_FILE, dialects.SHIELDS_CONFIG))
