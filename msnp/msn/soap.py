"""
The SOAP 1.1 plumbing of the MSNP13+ web services on the Passport site:
reading a request (hardened XML, size-limited), finding the caller by the
Passport token it carries, answering with the service's envelope or a
fault with the C{detail/errorcode} clients look for.

Each service is a L{SOAPService} resource whose C{op_<Action>} methods
take the caller's handle and the request's operation element and return
(a Deferred of) the XML of the response element, or raise L{SOAPFault}.
"""

from __future__ import annotations

import secrets
from typing import Optional
from xml.sax.saxutils import escape

from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger
from twisted.web import http, resource, server

from msnp.msn import safexml

log = Logger()

NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS_AB = "http://www.msn.com/webservices/AddressBook"
# Requests bigger than this are refused unparsed: the largest a client
# sends (an ADL-sized ABContactUpdate) is a few KB.
MAX_REQUEST = 64 * 1024


class SOAPFault(Exception):
    """
    Answer with a SOAP fault: C{errorcode} the service's own code (what
    clients switch on), C{text} the faultstring.
    """

    def __init__(self, errorcode: str, text: str, faultcode: str = "soap:Client", conflict: Optional[str] = None):
        super().__init__(text)
        self.errorcode = errorcode
        self.text = text
        self.faultcode = faultcode
        self.conflict = conflict


def fault_envelope(fault: SOAPFault, action: str, namespace: str = NS_AB) -> bytes:
    conflict = ""
    if fault.conflict:
        conflict = f"<additionalDetails><conflictObjectId>{escape(fault.conflict)}</conflictObjectId></additionalDetails>"
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{NS_SOAP}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body><soap:Fault>'
        f"<faultcode>{fault.faultcode}</faultcode><faultstring>{escape(fault.text)}</faultstring>"
        f"<faultactor>{escape(namespace)}/{escape(action)}</faultactor>"
        f'<detail><errorcode xmlns="{namespace}">{escape(fault.errorcode)}</errorcode>'
        f'<errorstring xmlns="{namespace}">{escape(fault.text)}</errorstring>'
        f'<machineName xmlns="{namespace}">msnp</machineName>{conflict}</detail>'
        "</soap:Fault></soap:Body></soap:Envelope>"
    ).encode("utf-8")


def envelope(body: str, header: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{NS_SOAP}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
        f"<soap:Header>{header}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode("utf-8")


class BadRequest(ValueError):
    pass


def parse_request(data: bytes):
    """
    The operation element (the first child of the Body) and the
    envelope's root; raises L{BadRequest}.
    """
    if len(data) > MAX_REQUEST:
        raise BadRequest("request too large")
    root = safexml.parse_xml(data, BadRequest)
    if safexml.local(root.tag) != "Envelope":
        raise BadRequest("not a SOAP envelope")
    body = safexml.child(root, "Body")
    if body is None or len(body) == 0:
        raise BadRequest("no operation in the body")
    return body[0], root


def _action_header(value: Optional[bytes]) -> str:
    """
    The operation a C{SOAPAction} header names (its last path segment).
    """
    if not value:
        return ""
    text = value.decode("latin-1").strip().strip('"')
    return text.rstrip("/").rpartition("/")[2]


def ticket_of(root) -> Optional[str]:
    """
    The Passport token a request carries: C{TicketToken} wherever the
    service puts it, or the OIM read service's C{PassportCookie} t/p pair.
    """
    token = safexml.find(root, "TicketToken")
    if token is not None and token.text:
        return token.text.strip()
    cookie = safexml.find(root, "PassportCookie")
    if cookie is not None:
        t, p = safexml.text(safexml.child(cookie, "t")), safexml.text(safexml.child(cookie, "p"))
        if t:
            return f"t={t}&p={p}"
    return None


class SOAPService(resource.Resource):
    """
    One web service: POSTed envelopes dispatched by operation to
    C{op_<name>(handle, operation)}.  An unknown or expired token, an
    operation the service lacks and a body that is not a SOAP request each
    get a fault (HTTP 500, as SOAP 1.1 wants); no request goes unanswered.
    """

    isLeaf = True
    namespace = NS_AB

    def __init__(self, service_tokens, clock):
        super().__init__()
        self._tokens = service_tokens
        self._clock = clock

    def header(self) -> str:
        """
        The SOAP header every answer of this service carries.
        """
        return ""

    def token_of(self, root) -> Optional[str]:
        """
        The Passport token a request of this service carries.
        """
        return ticket_of(root)

    def fault_envelope(self, fault: SOAPFault, action: str) -> bytes:
        return fault_envelope(fault, action, self.namespace)

    def render_GET(self, request):
        request.setResponseCode(http.NOT_ALLOWED)
        request.setHeader(b"Allow", b"POST")
        return b""

    def render_POST(self, request):
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        data = request.content.read(MAX_REQUEST + 1)
        action = "Unknown"
        try:
            operation, root = parse_request(data)
            action = safexml.local(operation.tag)
            named = _action_header(request.getHeader(b"soapaction"))
            if named and named != action:
                # The OIM store's body holds MessageType and Content: the
                # header names the operation, the body is its element.
                body = safexml.child(root, "Body")
                action = named
                operation = safexml.child(body, named)
                if operation is None:
                    operation = body
            handler = getattr(self, "op_" + action, None)
            if handler is None:
                raise SOAPFault("NotSupported", f"{action} is not offered", "soap:Server")
            token = self.token_of(root)
            handle = self._tokens.owner(token) if token else None
            if handle is None:
                raise SOAPFault("BadContextToken", "Invalid or expired ticket")
        except BadRequest as e:
            return self._fault(request, SOAPFault("BadArgument", f"Invalid request: {e}"), action)
        except SOAPFault as fault:
            return self._fault(request, fault, action)
        finished = []
        request.notifyFinish().addBoth(finished.append)
        # Handlers that read the request's header take the whole envelope.
        extra = (root,) if getattr(handler, "wants_envelope", False) else ()
        d = maybeDeferred(handler, handle, operation, *extra)

        def answered(body):
            self._write(request, finished, 200, envelope(body, self.header()))

        def failed(failure):
            if failure.check(SOAPFault):
                fault = failure.value
            else:
                log.failure("{service} failed on {action}", failure, service=type(self).__name__, action=action)
                fault = SOAPFault("InternalError", "Internal error", "soap:Server")
            self._write(request, finished, 500, self.fault_envelope(fault, action))

        d.addCallbacks(answered, failed)
        return server.NOT_DONE_YET

    def _fault(self, request, fault: SOAPFault, action: str) -> bytes:
        request.setResponseCode(500)
        request.refusal = f"SOAP fault {fault.errorcode} ({action})"
        return self.fault_envelope(fault, action)

    @staticmethod
    def _write(request, finished, code: int, body: bytes) -> None:
        if finished or request.finished:
            return
        request.setResponseCode(code)
        request.setHeader(b"Content-Length", b"%d" % len(body))
        request.write(body)
        request.finish()


def with_envelope(handler):
    """
    Mark an operation handler that takes the request's envelope as a
    third argument.
    """
    handler.wants_envelope = True
    return handler


def new_cache_key() -> str:
    return secrets.token_urlsafe(32)
