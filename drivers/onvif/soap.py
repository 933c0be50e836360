"""SOAP 1.2 envelopes of the ONVIF services, for the fake camera: parse a request, build a reply.

Pure functions over bytes and strings (no sockets). The client side never uses this: zeep
builds and parses its messages from the WSDLs that onvif-zeep-async ships, so a mistake
here shows up as a zeep parse error in the tests instead of hiding behind a matching bug.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from xml.sax.saxutils import escape

from lxml import etree  # type: ignore[import-untyped]

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "ter": "http://www.onvif.org/ver10/error",
    "tns1": "http://www.onvif.org/ver10/topics",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}

MAX_REQUEST = 256 * 1024
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=True
)


class SoapError(Exception):
    """A request the fake camera answers with a SOAP fault (``subcode`` is ``ter:...``)."""

    def __init__(self, subcode: str, reason: str, *, sender: bool = True) -> None:
        super().__init__(reason)
        self.subcode = subcode
        self.reason = reason
        self.sender = sender


@dataclass(frozen=True, slots=True)
class Request:
    operation: str  # local name of the Body's first child, e.g. "GetProfiles"
    body: etree._Element
    username: str | None
    digest: str | None
    nonce: str | None
    created: str | None
    plain_password: str | None


def parse_request(data: bytes) -> Request:
    if len(data) > MAX_REQUEST:
        raise SoapError("ter:InvalidArgs", "request too large")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise SoapError("ter:WellFormed", f"not well-formed XML: {exc}") from None
    body = root.find("s:Body", NS)
    if root.tag != f"{{{NS['s']}}}Envelope" or body is None or len(body) == 0:
        raise SoapError("ter:WellFormed", "not a SOAP 1.2 envelope")
    op = etree.QName(body[0]).localname
    user = digest = nonce = created = plain = None
    token = root.find("s:Header/wsse:Security/wsse:UsernameToken", NS)
    if token is not None:
        user = token.findtext("wsse:Username", None, NS)
        pw = token.find("wsse:Password", NS)
        if pw is not None:
            if (pw.get("Type") or "").endswith("#PasswordText"):
                plain = pw.text or ""
            else:
                digest = (pw.text or "").strip()
        nonce = token.findtext("wsse:Nonce", None, NS)
        created = token.findtext("wsu:Created", None, NS)
    return Request(op, body[0], user, digest, nonce, created, plain)


def password_digest(nonce_b64: str, created: str, password: str) -> str:
    """WS-Security UsernameToken Profile 1.0: Base64(SHA-1(nonce + created + password))."""
    nonce = base64.b64decode(nonce_b64)
    raw = hashlib.sha1(nonce + created.encode() + password.encode()).digest()
    return base64.b64encode(raw).decode()


def check_token(req: Request, user: str, password: str, now: dt.datetime) -> None:
    """Raise ter:NotAuthorized unless the UsernameToken proves ``password``."""
    if req.username is None or not hmac.compare_digest(req.username, user):
        raise SoapError("ter:NotAuthorized", "Sender not Authorized")
    if req.plain_password is not None:
        if not hmac.compare_digest(req.plain_password, password):
            raise SoapError("ter:NotAuthorized", "Sender not Authorized")
        return
    if req.digest is None or req.nonce is None or req.created is None:
        raise SoapError("ter:NotAuthorized", "Sender not Authorized")
    try:
        expect = password_digest(req.nonce, req.created, password)
        when = dt.datetime.fromisoformat(req.created.replace("Z", "+00:00"))
    except ValueError:
        raise SoapError("ter:NotAuthorized", "Sender not Authorized") from None
    if not hmac.compare_digest(expect, req.digest):
        raise SoapError("ter:NotAuthorized", "Sender not Authorized")
    # Cameras refuse tokens created far from their own clock (replay protection).
    if when.tzinfo is None or abs((now - when).total_seconds()) > 300:
        raise SoapError("ter:NotAuthorized", "Sender not Authorized: token time out of range")


_DECL = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<s:Envelope xmlns:s="{s}" xmlns:tds="{tds}" xmlns:trt="{trt}" xmlns:tptz="{tptz}" '
    'xmlns:tt="{tt}" xmlns:tev="{tev}" xmlns:wsnt="{wsnt}" xmlns:wsa="{wsa}" '
    'xmlns:ter="{ter}" xmlns:tns1="{tns1}">'
).format(**NS)


def envelope(body: str, header: str = "") -> bytes:
    head = f"<s:Header>{header}</s:Header>" if header else ""
    return f"{_DECL}{head}<s:Body>{body}</s:Body></s:Envelope>".encode()


def fault(err: SoapError) -> bytes:
    code = "s:Sender" if err.sender else "s:Receiver"
    return envelope(
        "<s:Fault><s:Code>"
        f"<s:Value>{code}</s:Value><s:Subcode><s:Value>{escape(err.subcode)}</s:Value>"
        "</s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en">{escape(err.reason)}</s:Text></s:Reason>'
        "</s:Fault>"
    )


def text(value: object) -> str:
    return escape(str(value))


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_duration(value: str) -> float:
    """An xs:duration of the forms cameras use (PT60S, PT1M30S, PT1H); seconds."""
    v = value.strip().upper()
    if not v.startswith("PT"):
        raise SoapError("ter:InvalidArgVal", f"unsupported duration {value!r}")
    total, num = 0.0, ""
    for ch in v[2:]:
        if ch.isdigit() or ch == ".":
            num += ch
            continue
        scale = {"H": 3600.0, "M": 60.0, "S": 1.0}.get(ch)
        if scale is None or not num:
            raise SoapError("ter:InvalidArgVal", f"unsupported duration {value!r}")
        total += float(num) * scale
        num = ""
    if num:
        raise SoapError("ter:InvalidArgVal", f"unsupported duration {value!r}")
    return total
