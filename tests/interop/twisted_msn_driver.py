"""
Drives Twisted's own MSNP8 client (twisted.words.protocols.msn, shipped by
Twisted up to 15.x, Python 2) against an msnp server: dispatch referral,
its own Passport 1.4 login, list sync, presence, and one conversation.

Run under Python 2.7, with C{MSNP_INTEROP_SITE} naming the directory that
Twisted was installed into (C{pip install --target}):

    python2.7 twisted_msn_driver.py DISPATCH_HOST:PORT NEXUS_URL HANDLE PASSWORD PEER call|answer TEXT

Everything the client sees is printed as one C{EVENT <json>} line per event
(the library prints other lines of its own); a line the library rejects
is reported as C{bad_line}.  The exit status is 0 when the conversation
was held, 1 otherwise.

The only change to the library's behaviour stands in for name resolution:
the library always connects to port 443 of the host it takes from the
nexus and login addresses, so C{host:port} there is connected to as such.
"""

from __future__ import print_function

import json
import os
import site
import sys

if os.environ.get("MSNP_INTEROP_SITE"):
    # A site directory, not a bare path entry: zope is a namespace
    # package that only its .pth file makes importable.
    site.addsitedir(os.environ["MSNP_INTEROP_SITE"])

from twisted.internet import protocol, reactor  # noqa: E402
from twisted.python import log  # noqa: E402
from twisted.words.protocols import msn  # noqa: E402

TIMEOUT = 40


def emit(event, **fields):
    fields["event"] = event
    print("EVENT " + json.dumps(fields), file=sys.stdout)
    sys.stdout.flush()


_connect_ssl = reactor.connectSSL


def connect_ssl(host, port, factory, context_factory, *args, **kwargs):
    if ":" in host:
        host, port = host.rsplit(":", 1)
        port = int(port)
    emit("passport_connect", host=host, port=port)
    return _connect_ssl(host, port, factory, context_factory, *args, **kwargs)


reactor.connectSSL = connect_ssl


def report_errors(event):
    # A line the library raises on outside its handlers (or any other
    # unhandled error) is logged, not passed to gotBadLine.
    if event.get("isError"):
        failure = event.get("failure")
        emit("log_error", text=failure.getTraceback() if failure is not None else " ".join(map(str, event.get("message", ()))))


log.addObserver(report_errors)


class Run(object):
    """
    The state of one driven client.
    """

    def __init__(self, handle, password, nexus, peer, role, text):
        self.handle = handle
        self.password = password
        self.nexus = nexus
        self.peer = peer
        self.role = role
        self.text = text
        self.ns = None
        self.calling = False
        self.result = 1

    def finish(self, result):
        self.result = result
        emit("finished", ok=result == 0)
        if self.ns is not None and self.ns.transport is not None:
            self.ns.logOut()
        reactor.callLater(0.5, reactor.stop)


RUN = None


class Dispatch(msn.DispatchClient):
    def connectionMade(self):
        self.userHandle = RUN.handle
        msn.DispatchClient.connectionMade(self)

    def gotNotificationReferral(self, host, port):
        emit("referral", host=host, port=port)
        self.transport.loseConnection()
        factory = msn.NotificationFactory()
        factory.userHandle = RUN.handle
        factory.password = RUN.password
        factory.passportServer = RUN.nexus
        factory.protocol = Notification
        reactor.connectTCP(host, port, factory)

    def gotBadLine(self, line, why):
        emit("bad_line", server="dispatch", line=line, why=str(why))


class Notification(msn.NotificationClient):
    def connectionMade(self):
        RUN.ns = self
        msn.NotificationClient.connectionMade(self)

    def loginFailure(self, message):
        emit("login_failure", message=str(message))
        RUN.finish(1)

    def loggedIn(self, userHandle, screenName, verified):
        emit("logged_in", handle=userHandle, name=screenName, verified=verified)
        msn.NotificationClient.loggedIn(self, userHandle, screenName, verified)

    def listSynchronized(self, *args):
        contacts = self.factory.contacts
        emit("synced", version=contacts.version, contacts=sorted(
            [[c.userHandle, c.lists, c.groups] for c in contacts.contacts.values()]))
        self.changeStatus(msn.STATUS_ONLINE).addCallback(lambda result: emit("status", status=result[0]))

    def gotContactStatus(self, statusCode, userHandle, screenName):
        emit("presence", via="ILN", status=statusCode, handle=userHandle, name=screenName)
        self._peer_seen(statusCode, userHandle)

    def contactStatusChanged(self, statusCode, userHandle, screenName):
        emit("presence", via="NLN", status=statusCode, handle=userHandle, name=screenName)
        self._peer_seen(statusCode, userHandle)

    def contactOffline(self, userHandle):
        emit("presence", via="FLN", status="FLN", handle=userHandle)

    def _peer_seen(self, status, handle):
        if handle != RUN.peer or status != msn.STATUS_ONLINE or RUN.role != "call" or RUN.calling:
            return
        RUN.calling = True
        self.requestSwitchboardServer().addCallback(self._got_switchboard)

    def _got_switchboard(self, result):
        host, port, key = result
        emit("switchboard", host=host, port=port)
        start_switchboard(host, port, key, None)

    def gotSwitchboardInvitation(self, sessionID, host, port, key, userHandle, screenName):
        emit("ring", handle=userHandle, name=screenName)
        if RUN.role == "answer" and userHandle == RUN.peer:
            start_switchboard(host, port, key, sessionID)

    def gotBadLine(self, line, why):
        emit("bad_line", server="notification", line=line, why=str(why))

    def gotError(self, errorCode):
        emit("error", code=errorCode)


class Switchboard(msn.SwitchboardClient):
    def loggedIn(self):
        emit("sb_logged_in")
        if not self.reply:
            self.inviteUser(RUN.peer)

    def gotChattingUsers(self, users):
        emit("roster", users=sorted(users))

    def userJoined(self, userHandle, screenName):
        emit("joined", handle=userHandle, name=screenName)
        if userHandle == RUN.peer:
            self._say(RUN.text)

    def _say(self, text):
        message = msn.MSNMessage()
        message.setHeader("Content-Type", "text/plain; charset=UTF-8")
        message.message = text
        self.sendMessage(message).addCallback(lambda _: emit("acknowledged", text=text))

    def gotMessage(self, message):
        emit("message", handle=message.userHandle, text=message.getMessage())
        if message.userHandle != RUN.peer:
            return
        if self.reply:
            self._say("echo: " + message.getMessage())
        else:
            # The caller leaves once the answer came back; the callee
            # sees BYE.
            self.transport.loseConnection()
            RUN.finish(0)

    def userLeft(self, userHandle):
        emit("left", handle=userHandle)
        if self.reply and userHandle == RUN.peer:
            RUN.finish(0)

    def gotBadLine(self, line, why):
        emit("bad_line", server="switchboard", line=line, why=str(why))


def start_switchboard(host, port, key, session_id):
    factory = protocol.ClientFactory()

    def build(addr):
        client = Switchboard()
        client.userHandle = RUN.handle
        client.key = key
        if session_id is not None:
            client.reply = 1
            client.sessionID = session_id
        client.factory = factory
        return client

    factory.buildProtocol = build
    reactor.connectTCP(host, port, factory)


def timed_out():
    emit("timeout")
    RUN.finish(1)


def main(argv):
    global RUN
    dispatch, nexus, handle, password, peer, role, text = argv[1:8]
    RUN = Run(handle, password, nexus, peer, role, text)
    host, port = dispatch.rsplit(":", 1)
    factory = protocol.ClientFactory()
    factory.protocol = Dispatch
    reactor.connectTCP(host, int(port), factory)
    reactor.callLater(TIMEOUT, timed_out)
    reactor.run()
    return RUN.result


if __name__ == "__main__":
    sys.exit(main(sys.argv))
