"""
Offline messages over real sockets and TLS: the OIM store (Store2) with its
lock-key challenge, the Mail-Data notices at login, on arrival and on
deletion, reading and deleting through rsi.asmx, MSNP18's UUM, the limits,
and the recipient's privacy.
"""

import base64
import re
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import pytest
import pytest_twisted
from twisted.internet import defer

import sso
from msnp.config import ServerConfig
from msnp.msn import challenge
from test_msnp13_18_lists import expect_mail_data, ml, online
from twn import pp_server  # noqa: F401 (fixture)

OIM = "http://messenger.msn.com/ws/2004/09/oim/"
RSI = "{http://www.hotmail.msn.com/ws/2004/09/oim/rsi}"
PRODUCT = ("PROD0120PW!CCV9@", "C1BX{V4W}Q3*10SM")


def store2(sender, name, recipient, token, lockkey, text, sequence=1):
    content = (
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n"
        "X-OIM-Message-Type: OfflineMessage\r\nX-OIM-Run-Id: {3A3BE82D-0000-0000-0000-000000000001}\r\n"
        f"X-OIM-Sequence-Num: {sequence}\r\n\r\n" + base64.b64encode(text.encode()).decode()
    )
    friendly = "=?utf-8?B?" + base64.b64encode(name.encode()).decode() + "?="
    return (
        '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header>'
        f'<From memberName="{sender}" friendlyName="{friendly}" xml:lang="en-US" proxy="MSNMSGR" xmlns="{OIM}" msnpVer="MSNP18" buildVer="8.5.1288"/>'
        f'<To memberName="{recipient}" xmlns="{OIM}"/>'
        f'<Ticket passport={quoteattr(token)} appid="{PRODUCT[0]}" lockkey="{lockkey}" xmlns="{OIM}"/>'
        '<Sequence xmlns="http://schemas.xmlsoap.org/ws/2003/03/rm"><Identifier xmlns="http://schemas.xmlsoap.org/ws/2002/07/utility">'
        f"http://messenger.msn.com</Identifier><MessageNumber>{sequence}</MessageNumber></Sequence></soap:Header>"
        f'<soap:Body><MessageType xmlns="{OIM}">text</MessageType><Content xmlns="{OIM}">{escape(content)}</Content></soap:Body></soap:Envelope>'
    ).encode()


@defer.inlineCallbacks
def send_oim(server, sender, recipient, token, text, lockkey=""):
    """
    Store2, answering the lock-key challenge when one comes; returns
    (status, body, the lock key used).
    """
    headers = {"SOAPAction": "http://messenger.live.com/ws/2006/09/oim/Store2"}
    response, data = yield sso.post(server, "/OimWS/oim.asmx", store2(sender, "Alice", recipient, token, lockkey, text), headers)
    match = re.search(rb"<LockKeyChallenge[^>]*>(\d+)</LockKeyChallenge>", data)
    if response.code == 500 and match and not lockkey:
        lockkey = challenge.msnp11_answer(match.group(1).decode(), *PRODUCT)
        response, data = yield sso.post(server, "/OimWS/oim.asmx", store2(sender, "Alice", recipient, token, lockkey, text), headers)
    return response.code, data, lockkey


def rsi(action, inner, token):
    t, _, p = token.partition("&p=")
    return (
        '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header>'
        f'<PassportCookie xmlns="http://www.hotmail.msn.com/ws/2004/09/oim/rsi"><t>{escape(t[2:])}</t><p>{escape(p)}</p></PassportCookie>'
        f'</soap:Header><soap:Body><{action} xmlns="http://www.hotmail.msn.com/ws/2004/09/oim/rsi">{inner}</{action}></soap:Body></soap:Envelope>'
    ).encode()


@defer.inlineCallbacks
def read_service(server, action, inner, token):
    headers = {"SOAPAction": f"http://www.hotmail.msn.com/ws/2004/09/oim/rsi/{action}"}
    response, data = yield sso.post(server, "/rsi/rsi.asmx", rsi(action, inner, token), headers)
    return response.code, data


@pytest_twisted.inlineCallbacks
def test_oim_round_trip(pp_server):
    """
    Alice leaves Bob (offline) a message: the first Store2 gets the
    lock-key challenge, the answered one is kept.  Bob's first CHG brings
    the Mail-Data notice naming it; GetMessage gives it; DeleteMessages
    deletes it and tells his endpoint; the list is then empty.  A second
    message while Bob is online is announced at once.
    """
    alice = yield online(pp_server, "alice@example.com")
    secure = alice.tokens["messengersecure.live.com"]["token"]
    code, data, lockkey = yield send_oim(pp_server, "alice@example.com", "bob@example.com", secure, "hello bob")
    assert code == 200 and b"<StoreResponse" in data, data
    code, data, _ = yield send_oim(pp_server, "alice@example.com", "bob@example.com", secure, "wrong key", lockkey="0" * 32)
    assert code == 500 and b"q0:AuthenticationFailed" in data and b"LockKeyChallenge" in data
    bob, tokens = yield sso.sso_login(pp_server, "bob@example.com", "pw-bob", "MSNP15")
    bob.send_payload("ADL 5", ml(initial=True))
    yield bob.expect_line("ADL 5 OK")
    bob.send("CHG 6 NLN 0 0")
    yield bob.expect_line("CHG 6 NLN 0 0")
    notice = yield expect_mail_data(bob, 1)
    assert b"<E>alice@example.com</E>" in notice.payload
    message_id = re.search(rb"<I>([0-9A-F-]{36})</I>", notice.payload).group(1).decode()
    web = tokens["messenger.msn.com"]["token"]
    code, data = yield read_service(pp_server, "GetMetadata", "", web)
    assert code == 200 and message_id.encode() in data
    code, data = yield read_service(pp_server, "GetMessage", f"<messageId>{message_id}</messageId><alsoMarkAsRead>false</alsoMarkAsRead>", web)
    assert code == 200
    text = ET.fromstring(data).find(f".//{RSI}GetMessageResult").text
    # XML readers turn the CRLFs into LFs, as clients see them.
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    assert "From: =?utf-8?B?QWxpY2U=?= <alice@example.com>" in head and "X-OIM-Sequence-Num: 1" in head
    assert base64.b64decode(body) == b"hello bob"
    code, data = yield read_service(pp_server, "DeleteMessages", f"<messageIds><messageId>{message_id}</messageId></messageIds>", web)
    assert code == 200
    deleted = yield bob.next()
    assert b"text/x-msmsgsactivemailnotification" in deleted.payload and b"Message-Delta: 1" in deleted.payload
    code, data = yield read_service(pp_server, "GetMetadata", "", web)
    assert b"<M>" not in data
    code, data = yield read_service(pp_server, "GetMessage", f"<messageId>{message_id}</messageId>", web)
    assert code == 500
    code, data, _ = yield send_oim(pp_server, "alice@example.com", "bob@example.com", secure, "again", lockkey)
    assert code == 200
    arrived = yield bob.next()
    assert b"text/x-msmsgsoimnotification" in arrived.payload and b"<E>alice@example.com</E>" in arrived.payload
    yield alice.disconnect()
    yield bob.disconnect()


@pytest_twisted.inlineCallbacks
def test_uum_keeps_an_offline_message_at_msnp18(pp_server):
    """
    UUM with a text message to an offline Windows Live user: UUM OK and
    kept; another network: 204; a typing notice: 217.
    """
    alice = yield online(pp_server, "alice@example.com")
    payload = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nDest-Agent: client\r\n\r\nsee you"
    alice.send_payload("UUM 8 carol@example.com 1 1", payload)
    yield alice.expect_line("UUM 8 OK")
    alice.send_payload("UUM 9 carol@yahoo.com 32 1", payload)
    yield alice.expect_line("204 9")
    alice.send_payload("UUM 10 carol@example.com 1 2", b"MIME-Version: 1.0\r\nContent-Type: text/x-msmsgscontrol\r\n\r\n")
    yield alice.expect_line("217 10")
    carol, tokens = yield sso.sso_login(pp_server, "carol@example.com", "pw-carol")
    code, data = yield read_service(pp_server, "GetMetadata", "", tokens["messenger.msn.com"]["token"])
    assert data.count(b"<M>") == 1 and b"<E>alice@example.com</E>" in data
    yield alice.disconnect()
    yield carol.disconnect()


@pytest.mark.parametrize("server_config", [ServerConfig(max_offline_messages=1)])
@pytest_twisted.inlineCallbacks
def test_limits_and_privacy(pp_server):
    """
    Past the count limit Store2 is refused; a recipient whose privacy
    refuses the sender (block list) and an unknown recipient get
    SystemUnavailable; nothing unreadable is kept.
    """
    alice = yield online(pp_server, "alice@example.com")
    secure = alice.tokens["messengersecure.live.com"]["token"]
    code, _, lockkey = yield send_oim(pp_server, "alice@example.com", "bob@example.com", secure, "one")
    assert code == 200
    code, data, _ = yield send_oim(pp_server, "alice@example.com", "bob@example.com", secure, "two", lockkey)
    assert code == 500 and b"SenderThrottleLimitExceeded" in data
    code, data, _ = yield send_oim(pp_server, "alice@example.com", "nobody@example.com", secure, "x", lockkey)
    assert code == 500 and b"q0:SystemUnavailable" in data
    dave = yield online(pp_server, "dave@example.com")
    dave.send_payload("ADL 7", ml(("alice@example.com", 4)))
    yield dave.expect_line("ADL 7 OK")
    code, data, _ = yield send_oim(pp_server, "alice@example.com", "dave@example.com", secure, "x", lockkey)
    assert code == 500 and b"q0:SystemUnavailable" in data
    code, data, _ = yield send_oim(pp_server, "alice@example.com", "carol@example.com", "t=forged&p=forged", "x", lockkey)
    assert code == 500 and b"q0:AuthenticationFailed" in data
    yield alice.disconnect()
    yield dave.disconnect()
