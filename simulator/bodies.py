"""Hook bodies as WCS POSTs them, shaped like ``shared/wcs/samples`` (pure, no I/O).

Every function returns a fresh ``dict`` in the field order of the sample of that hook; the
identifiers and the varying values come from the caller. Bodies of one leg or one call repeat
their descriptive fields unchanged, as WCS does (the projector's merge rules rely on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Body = dict[str, Any]

USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
SDP_AUDIO_VIDEO = (
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 8\r\nc=IN IP4 0.0.0.0\r\n"
    "a=mid:0\r\na={direction}\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:8 PCMA/8000\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na={direction}\r\n"
    "a=rtpmap:96 VP8/90000\r\n"
)


@dataclass(frozen=True, slots=True)
class Context:
    """The fields WCS puts in every hook of one session."""

    node_id: str
    app: str
    session_id: str

    def body(self) -> Body:
        return {"nodeId": self.node_id, "appKey": self.app, "sessionId": self.session_id}


@dataclass(frozen=True, slots=True)
class SipAccount:
    """The ``sip*`` connect fields of a session that registers with a SIP server."""

    login: str
    password: str
    domain: str = "sip.example.com"

    def fields(self) -> Body:
        return {
            "sipLogin": self.login,
            "sipAuthenticationName": self.login,
            "sipPassword": self.password,
            "sipDomain": self.domain,
            "sipOutboundProxy": self.domain,
            "sipPort": 5060,
            "sipRegisterRequired": True,
        }


@dataclass(frozen=True, slots=True)
class Leg:
    """The descriptive fields of one publish or play leg."""

    media_session_id: str
    name: str
    published: bool
    create_date_ms: int
    width: int = 1280
    height: int = 720


@dataclass(frozen=True, slots=True)
class Call:
    """The descriptive fields of one SIP call."""

    call_id: str
    incoming: bool
    caller: str
    callee: str
    visible_name: str


def connect(ctx: Context, user_id: str, token: str, sip: SipAccount | None) -> Body:
    """``connect``: the session object the Web SDK sends (``sip*`` fields only with SIP)."""
    body = ctx.body() | {
        "useWsTunnel": False,
        "useWsTunnelPacketization2": False,
        "useBase64BinaryEncoding": False,
        "mediaProviders": ["WebRTC", "MSE", "WSPlayer"],
        "clientVersion": "2.0",
        "clientOSVersion": USER_AGENT.removeprefix("Mozilla/"),
        "clientBrowserVersion": USER_AGENT,
        "msePacketizationVersion": 2,
        "custom": {"token": token, "userId": user_id},
    }
    return body | (sip.fields() if sip else {})


def connection_status(connect_body: Body, status: str, info: str | None = None) -> Body:
    """``ConnectionStatusEvent``: the connect object plus ``status`` (and ``authToken``)."""
    body = dict(connect_body) | {"authToken": connect_body["sessionId"], "status": status}
    return body | ({"info": info} if info else {})


def registration_status(ctx: Context, sip: SipAccount, status: str) -> Body:
    """``RegistrationStatusEvent`` with the SIP account fields WCS forwards."""
    raw = (
        f"SIP/2.0 200 OK\r\nFrom: <sip:{sip.login}@{sip.domain}>\r\n"
        f"To: <sip:{sip.login}@{sip.domain}>\r\nCSeq: 2 REGISTER\r\nExpires: 3600\r\n\r\n"
    )
    return ctx.body() | sip.fields() | {"status": status, "sipMessageRaw": raw}


def stream_request(ctx: Context, leg: Leg, token: str) -> Body:
    """``publishStream`` / ``playStream``: the SDK's request, status ``PENDING``."""
    direction = "sendonly" if leg.published else "recvonly"
    video: Any = {"width": leg.width, "height": leg.height} if leg.published else True
    body = ctx.body() | {
        "mediaSessionId": leg.media_session_id,
        "name": leg.name,
        "published": leg.published,
        "hasVideo": True,
        "hasAudio": True,
        "status": "PENDING",
        "record": False,
    }
    if not leg.published:
        body |= {"width": 0, "height": 0}
    return body | {
        "mediaProvider": "WebRTC",
        "sdp": SDP_AUDIO_VIDEO.format(direction=direction),
        "custom": {"token": token},
        "bitrate": 0,
        "minBitrate": 0,
        "maxBitrate": 0,
        "constraints": {"audio": True, "video": video},
        "transport": "UDP",
        "cvoExtension": False,
    }


def stream_stop(ctx: Context, leg: Leg) -> Body:
    """``unPublishStream`` / ``stopStream``: the leg as the client knows it."""
    return ctx.body() | {
        "mediaSessionId": leg.media_session_id,
        "name": leg.name,
        "published": leg.published,
        "hasVideo": True,
        "hasAudio": True,
        "status": "PUBLISHING" if leg.published else "PLAYING",
        "record": False,
    }


def stream_status(ctx: Context, leg: Leg, status: str, info: str | None = None) -> Body:
    """``StreamStatusEvent`` (and, with an active status, ``StreamKeepAliveEvent``)."""
    body = ctx.body() | {
        "mediaSessionId": leg.media_session_id,
        "name": leg.name,
        "published": leg.published,
        "hasVideo": True,
        "hasAudio": True,
        "status": status,
        "audioCodec": "opus",
        "videoCodec": "VP8",
        "record": False,
        "width": leg.width,
        "height": leg.height,
        "bitrate": 0,
        "minBitrate": 0,
        "maxBitrate": 0,
        "quality": 0,
        "history": False,
        "gop": 0,
        "fps": 0,
        "audioBitrate": 0,
        "codecImpl": "",
        "transport": "UDP",
        "cvoExtension": False,
        "createDate": leg.create_date_ms,
        "mediaType": "publish" if leg.published else "play",
        "audioState": {"muted": False},
        "videoState": {"muted": False},
        "mediaProvider": "WebRTC",
    }
    return body | ({"info": info} if info else {})


def call_request(ctx: Context, call: Call, ticket: str) -> Body:
    """``call`` (outgoing) or ``answer`` (incoming): the SDK's call object, ``PENDING``."""
    body = ctx.body() | {
        "callId": call.call_id,
        "incoming": call.incoming,
        "hasVideo": True,
        "hasAudio": True,
        "status": "PENDING",
        "mediaProvider": "WebRTC",
        "sdp": SDP_AUDIO_VIDEO.format(direction="sendrecv"),
        "sipSDP": [],
        "caller": call.caller,
        "callee": call.callee,
        "custom": {"ticket": ticket},
    }
    return body if call.incoming else body | {"visibleName": call.visible_name}


def call_status(
    ctx: Context, call: Call, status: str, sip_status: int | None, info: str | None = None
) -> Body:
    """``CallStatusEvent`` (also the shape of ``OnCallEvent``)."""
    body = ctx.body() | {"callId": call.call_id, "incoming": call.incoming, "status": status}
    if sip_status is not None:
        body["sipStatus"] = sip_status
    body |= {
        "caller": call.caller,
        "callee": call.callee,
        "hasAudio": True,
        "hasVideo": True,
        "visibleName": call.visible_name,
        "mediaProvider": "WebRTC",
        "isMsrp": False,
    }
    if info:
        body["info"] = info
    if status == "FAILED" and sip_status is not None:
        body["sipMessageRaw"] = f"SIP/2.0 {sip_status} {info or 'ERROR'}\r\nCSeq: 1 INVITE\r\n\r\n"
    return body


def incoming_call(ctx: Context, call: Call) -> Body:
    """``OnCallEvent``: the call object of an incoming INVITE, status ``RING``."""
    body = call_status(ctx, call, "RING", 180)
    body["sipMessageRaw"] = (
        f"INVITE sip:{call.callee}@sip.example.com SIP/2.0\r\n"
        f'From: "{call.visible_name}" <sip:{call.caller}@sip.example.com>\r\n'
        f"To: <sip:{call.callee}@sip.example.com>\r\nCSeq: 1 INVITE\r\n\r\n"
    )
    return body


def call_action(ctx: Context, call: Call, **fields: Any) -> Body:
    """``hold``, ``unhold``, ``hangup``, ``transfer`` and ``sendDtmf``: ``callId`` + ``fields``."""
    return ctx.body() | {"callId": call.call_id} | fields


def transfer_status(ctx: Context, call: Call, target: str, status: str, info: str | None) -> Body:
    """``TransferStatusEvent``."""
    body = ctx.body() | {"callId": call.call_id, "target": target, "status": status}
    return body | ({"info": info} if info else {})


def data(ctx: Context, operation_id: str, payload: Any) -> Body:
    """``OnDataEvent``: what the client passed to ``session.sendData``."""
    return ctx.body() | {"operationId": operation_id, "payload": payload}


def data_status(ctx: Context, operation_id: str, status: str, info: str | None = None) -> Body:
    """``DataStatusEvent``."""
    body = ctx.body() | {"operationId": operation_id, "status": status}
    return body | ({"info": info} if info else {})


def bug_report(ctx: Context, text: str, kind: str) -> Body:
    """``submitBugReport``."""
    return ctx.body() | {"text": text, "type": kind}


def bug_report_status(ctx: Context, filename: str) -> Body:
    """``BugReportStatusEvent``: the file WCS saved the report to."""
    return ctx.body() | {"filename": filename}


def session_debug(ctx: Context, command: str) -> Body:
    """``sessionDebug``: ``start`` or ``stop``."""
    return ctx.body() | {"command": command}


def session_debug_status(ctx: Context, status: str) -> Body:
    """``SessionDebugStatusEvent``: ``STARTED`` or ``STOPPED``."""
    return ctx.body() | {"status": status}


def push_logs(ctx: Context, logs: str) -> Body:
    """``pushLogs``: a chunk of client log lines."""
    return ctx.body() | {"logs": logs}
