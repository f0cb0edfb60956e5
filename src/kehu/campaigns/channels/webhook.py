"""An HTTP webhook: each message POSTed as JSON, for SMS gateways, app push and chat bots.

Settings (``[channels.webhook]`` in kehu.toml)::

    url = "https://sms-gateway.example.com/v1/send"
    bearer_token_env = "KEHU_SMS_TOKEN"     # or bearer_token = "…"
    secret_env = "KEHU_SMS_SECRET"          # signs the body: X-Kehu-Signature: sha256=<hex>
    headers = { "X-Tenant" = "shop-01" }
    batch = 1                               # or N: a JSON list of up to N messages a request

The body of a request is one message (``batch = 1``) or a list of messages::

    {"contact_id": "SPRING:C1", "campaign_id": "SPRING", "customer_id": "C1",
     "channel": "sms", "recipient": "13800000000", "subject": null, "body": "王芳，您好…",
     "payload": {"name": "王芳", "offer": "满200减30"}}

``Idempotency-Key`` carries the contact id (in batch mode a digest of the batch's contact
ids), the same on every retry, so a gateway can drop a duplicate. The signature is the hex
HMAC-SHA256 of the exact body bytes with ``secret``.

A 2xx answer is success; 408, 429, 5xx, a refused connection and a timeout may pass later
(retryable); any other 4xx will not (permanent). In batch mode the answer applies to every
message of the request.

>>> hook = WebhookChannel({"url": "http://127.0.0.1:9/send", "secret": "k"})
>>> body = hook.body([Message(channel="sms", contact_id="C1:1", recipient="13800000000")])
>>> hook.headers(body, [Message(channel="sms", contact_id="C1:1")])["Idempotency-Key"]
'C1:1'
>>> try:
...     WebhookChannel({"url": "ftp://x"})
... except ChannelConfigError as exc:
...     print(exc)  # doctest: +NORMALIZE_WHITESPACE
Channel 'webhook': the setting 'url' is wrong: Value error, must start with http:// or
https:// (got 'ftp://x').
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator

from kehu.campaigns.channels.base import Channel, ChannelConfigError, Message, SendResult, Settings
from kehu.i18n import _


class WebhookSettings(Settings):
    url: str = Field(description="Address the messages are POSTed to.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra HTTP headers.")
    bearer_token: SecretStr | None = Field(None, description="Sent as Authorization: Bearer.")
    bearer_token_env: str | None = Field(
        None, description="Environment variable holding the bearer token."
    )
    secret: SecretStr | None = Field(None, description="Key of the HMAC-SHA256 body signature.")
    secret_env: str | None = Field(None, description="Environment variable holding the key.")
    signature_header: str = Field(
        "X-Kehu-Signature", min_length=1, description="Header carrying 'sha256=<hex digest>'."
    )
    timeout: float = Field(10.0, gt=0, le=600, description="Seconds to wait for an answer.")
    batch: int = Field(
        1,
        ge=1,
        le=10_000,
        description="Messages per request: 1 sends one JSON object, more sends a JSON list.",
    )
    use_proxy: bool = Field(True, description="Honour HTTP(S)_PROXY environment variables.")

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.lower().startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v


def _secret(value: SecretStr | None, env: str | None, setting: str) -> bytes | None:
    if env:
        got = os.environ.get(env)
        if got is None:
            raise ChannelConfigError(
                _(
                    "Channel 'webhook': the environment variable {name} "
                    "(setting '{setting}') is not set."
                ).format(name=env, setting=setting)
            )
        return got.encode("utf-8")
    return value.get_secret_value().encode("utf-8") if value is not None else None


class WebhookChannel(Channel[WebhookSettings]):
    """HTTP POST of JSON (SMS gateways, app push); HMAC-signed, idempotency key."""

    name: ClassVar[str] = "webhook"
    config_model = WebhookSettings

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        c = self.config
        self._token = _secret(c.bearer_token, c.bearer_token_env, "bearer_token_env")
        self._key = _secret(c.secret, c.secret_env, "secret_env")
        handlers: list[urllib.request.BaseHandler] = []
        if not c.use_proxy:
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    @property
    def batch_size(self) -> int | None:
        return max(self.config.batch, 100)

    @staticmethod
    def item(m: Message) -> dict[str, Any]:
        return {
            "contact_id": m.contact_id,
            "campaign_id": m.campaign_id,
            "customer_id": m.customer_id,
            "channel": m.channel,
            "recipient": m.recipient,
            "subject": m.subject,
            "body": m.body,
            "payload": m.payload,
        }

    def body(self, group: Sequence[Message]) -> bytes:
        """The request body of ``group`` (one object, or a list in batch mode)."""
        data: Any = [self.item(m) for m in group] if self.config.batch > 1 else self.item(group[0])
        return json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")

    def headers(self, body: bytes, group: Sequence[Message]) -> dict[str, str]:
        """The request headers: content type, idempotency key, token, signature, extras."""
        if self.config.batch > 1:
            joined = "\n".join(m.contact_id or "" for m in group)
            key = "batch-" + hashlib.sha256(joined.encode("utf-8")).hexdigest()[:32]
        else:
            key = group[0].contact_id or ""
        out = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "kehu"}
        if key:
            out["Idempotency-Key"] = key
        if self._token is not None:
            out["Authorization"] = "Bearer " + self._token.decode("utf-8")
        if self._key is not None:
            digest = hmac.new(self._key, body, hashlib.sha256).hexdigest()
            out[self.config.signature_header] = "sha256=" + digest
        out.update(self.config.headers)
        return out

    def send(self, messages: Sequence[Message]) -> list[SendResult]:
        results: list[SendResult] = []
        size = self.config.batch
        for start in range(0, len(messages), size):
            group = messages[start : start + size]
            result = self._post(group)
            results.extend([result] * len(group))
        return results

    def _post(self, group: Sequence[Message]) -> SendResult:
        url = self.config.url
        body = self.body(group)
        req = urllib.request.Request(
            url, data=body, headers=self.headers(body, group), method="POST"
        )
        try:
            with self._opener.open(req, timeout=self.config.timeout) as resp:
                resp.read()
            return SendResult.success()
        except urllib.error.HTTPError as exc:
            try:
                detail = exc.read(300).decode("utf-8", "replace").strip()
            except (OSError, http.client.HTTPException):
                detail = ""
            finally:
                exc.close()
            code = exc.code
            retryable = code in (408, 425, 429) or code >= 500
            return SendResult.failure(
                _("{url} answered HTTP {code} {reason}: {detail}").format(
                    url=url, code=code, reason=exc.reason, detail=detail or "-"
                ),
                retryable=retryable,
            )
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            return SendResult.failure(
                _("Cannot reach {url}: {err}").format(
                    url=url,
                    err=f"{reason.__class__.__name__}: {reason}"
                    if isinstance(reason, BaseException)
                    else reason,
                ),
                retryable=True,
            )
