"""
The Storage web service (C{/storageservice/SchematizedStore.asmx}) of
MSNP15+ clients: the roaming profile, read with GetProfile and written with
UpdateProfile.

The display name is the account's friendly name (stored, and seen by
watchers of every dialect once changed here); the personal status is the
personal message the user shows now (from any of their endpoints here).
Documents (the user tile) and relationships are not kept: those
operations get the service's own fault.
"""

from __future__ import annotations

import re
import time
from typing import Optional
from xml.sax.saxutils import escape

from msnp.msn import safexml, wire
from msnp.msn.abservice import cid
from msnp.msn.soap import SOAPFault, SOAPService, new_cache_key

NS_W10 = "http://www.msn.com/webservices/storage/w10"
NS_2008 = "http://www.msn.com/webservices/storage/2008"
_PSM = re.compile(rb"<PSM>(.*?)</PSM>", re.S)


def personal_status(payload: bytes) -> str:
    """
    The text of the PSM element of a UUX Data document (still escaped as
    XML, as it is written back into XML).
    """
    match = _PSM.search(payload or b"")
    return match.group(1).decode("utf-8", "replace") if match else ""


class StorageService(SOAPService):
    """
    GetProfile and UpdateProfile, answered in the namespace the client
    used (WLM 8's w10 or WLM 2009's 2008).
    """

    namespace = NS_2008

    def __init__(self, service_tokens, clock, messenger, config):
        super().__init__(service_tokens, clock)
        self._messenger = messenger
        self._config = config

    def _namespace(self, operation) -> str:
        tag = operation.tag
        return tag[1:].partition("}")[0] if tag.startswith("{") else NS_2008

    def _now(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self._clock.seconds()))

    def _user(self, handle: str):
        def found(me):
            if me is None:
                raise SOAPFault("ItemDoesNotExist", "Profile does not exist")
            return me

        return self._messenger.service_user(handle).addCallback(found)

    def op_GetProfile(self, handle, operation):
        namespace = self._namespace(operation)

        def render(me):
            user = me.user
            number = cid(user.handle)
            now = self._now()
            live = self._messenger.signed_in(user.handle)
            status = personal_status(live[0].personal_message) if live else ""
            status_xml = f"<PersonalStatus>{status}</PersonalStatus><PersonalStatusLastModified>{now}</PersonalStatusLastModified>" if status else ""
            return (
                f'<GetProfileResponse xmlns="{namespace}"><GetProfileResult>'
                f"<ResourceID>{number}!106</ResourceID><DateModified>{now}</DateModified>"
                f"<ExpressionProfile><ResourceID>{number}!118</ResourceID><Version>1</Version>"
                f"<DateModified>{now}</DateModified>{status_xml}"
                f"<DisplayName>{escape(user.friendly_name)}</DisplayName><DisplayNameLastModified>{now}</DisplayNameLastModified>"
                "</ExpressionProfile></GetProfileResult></GetProfileResponse>"
            )

        return self._user(handle).addCallback(render)

    def op_UpdateProfile(self, handle, operation):
        """
        A new display name renames the user; the personal status travels
        as presence (the client sends UUX too) and is not kept here.
        """
        namespace = self._namespace(operation)
        profile = safexml.path(operation, "profile", "ExpressionProfile")
        if profile is None:
            raise SOAPFault("InvalidArgument", "No ExpressionProfile")
        name_element = safexml.child(profile, "DisplayName")
        name: Optional[str] = None
        if name_element is not None and name_element.text and name_element.text.strip():
            name = name_element.text.strip()
            if len(wire.url_encode(name)) > wire.MAX_NAME_BYTES:
                raise SOAPFault("InvalidArgument", "Display name too long")

        def update(me):
            if name is None or name == me.user.friendly_name:
                return f'<UpdateProfileResponse xmlns="{namespace}" />'
            d = self._messenger.lists.set_friendly_name(me, name)
            return d.addCallback(lambda _: f'<UpdateProfileResponse xmlns="{namespace}" />')

        return self._user(handle).addCallback(update)

    def header(self) -> str:
        return f'<AffinityCacheHeader xmlns="{NS_2008}"><CacheKey>{new_cache_key()}</CacheKey></AffinityCacheHeader>'
