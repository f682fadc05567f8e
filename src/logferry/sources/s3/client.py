"""S3 and SQS through boto3, made awaitable, with errors turned into logferry's.

boto3 is synchronous; every call runs in a worker thread (``asyncio.to_thread``). One client per
service is created once per source: boto3 clients are thread-safe, sessions are not, and creating
a client costs far more than a request. Credentials are passed explicitly, and endpoint settings
from the environment or ``~/.aws/config`` are ignored, so what runs is what the config says.
botocore retries each request a few times (standard mode: throttling, 5xx, connection errors);
what still fails is raised as a :class:`~logferry.core.errors.SourceError` for the shared polling
loop to report and retry with backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

# boto3 ships no type hints (the boto3-stubs package is not a dependency).
import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from logferry.core.errors import AuthError, SourceError, VendorAPIError

__all__ = ["AwsSettings", "ListPage", "S3Bucket", "SqsMessage", "SqsQueue", "classify", "make_clients"]

T = TypeVar("T")

#: Error codes that mean "these credentials may not do this", from S3 and SQS (query and JSON protocols).
AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "UnrecognizedClientException",
        "AWS.SimpleQueueService.AccessDenied",
    }
)

#: S3's answers to a request signed for, or sent to, another region than the bucket's.
WRONG_REGION_CODES = frozenset(
    {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"}
)


@dataclass(frozen=True)
class AwsSettings:
    region: str
    access_key_id: str
    secret_access_key: str
    endpoint_url: str | None
    #: botocore's ``verify``: False, True, or a CA bundle path.
    verify: bool | str
    timeout_secs: float
    max_attempts: int


def make_clients(settings: AwsSettings) -> tuple[Any, Any]:
    """The (S3, SQS) clients; SQS is created lazily by botocore only when first used."""
    session = boto3.session.Session(
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        region_name=settings.region,
    )
    config = Config(
        retries={"mode": "standard", "max_attempts": settings.max_attempts},
        connect_timeout=settings.timeout_secs,
        read_timeout=settings.timeout_secs,
        # A custom endpoint (S3-compatible store, local server) rarely serves bucket subdomains.
        s3={"addressing_style": "path" if settings.endpoint_url else "auto"},
        ignore_configured_endpoint_urls=True,
        user_agent_extra="logferry",
    )
    common: dict[str, Any] = {
        "endpoint_url": settings.endpoint_url,
        "config": config,
        "verify": settings.verify,
    }
    return session.client("s3", **common), session.client("sqs", **common)


def classify(exc: Exception, what: str, hint: str = "") -> SourceError:
    """A boto3 failure as a :class:`SourceError` whose text says what to fix (never the secret)."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = str(err.get("Message") or "")
        detail = f"{code or status}" + (f": {message}" if message else "")
        if code == "InvalidAccessKeyId" or code == "InvalidClientTokenId":
            return AuthError(
                f"{what}: the access key id is unknown ({detail}); check access_key_id. Cisco-managed "
                "keys stop working when regenerated in the dashboard and must be rotated every 90 days"
            )
        if code == "SignatureDoesNotMatch":
            return AuthError(
                f"{what}: signature refused ({detail}); secret_access_key does not belong to access_key_id"
            )
        if code in AUTH_CODES or status == 403:
            return AuthError(f"{what}: access denied ({detail}); {hint or 'the key lacks permission here'}")
        if code in ("NoSuchBucket", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            return VendorAPIError(f"{what}: does not exist ({detail}); {hint}".rstrip("; "), status)
        if code in WRONG_REGION_CODES:
            return VendorAPIError(f"{what}: wrong region ({detail}); set region to the bucket's", status)
        return VendorAPIError(f"{what}: {detail}", status)
    if isinstance(exc, BotoCoreError):
        return SourceError(f"{what}: {exc}")
    return SourceError(f"{what}: {type(exc).__name__}: {exc}")


async def _call(what: str, hint: str, fn: Callable[..., T], /, **kwargs: Any) -> T:
    try:
        return await asyncio.to_thread(fn, **kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc, what, hint) from None


@dataclass(frozen=True)
class ListPage:
    keys: list[str]
    next_token: str | None


class S3Bucket:
    """The three S3 requests a log collector needs, on one bucket."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket
        self._hint = (
            "the key needs s3:ListBucket and s3:GetObject on this bucket and prefix; check bucket, "
            "prefix and region"
        )

    async def list_page(self, prefix: str, start_after: str | None, token: str | None) -> ListPage:
        """One ListObjectsV2 page of keys under ``prefix`` after ``start_after``, in key order."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if token:
            kwargs["ContinuationToken"] = token
        elif start_after:
            kwargs["StartAfter"] = start_after
        resp = await _call(
            f"listing s3://{self.bucket}/{prefix}", self._hint, self.client.list_objects_v2, **kwargs
        )
        keys = [str(o["Key"]) for o in resp.get("Contents", ())]
        nxt = resp.get("NextContinuationToken") if resp.get("IsTruncated") else None
        return ListPage(keys, str(nxt) if nxt else None)

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or ``None`` when it no longer exists (deleted after it was listed)."""

        def read() -> bytes | None:
            try:
                resp = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            body: bytes = resp["Body"].read()
            return body

        try:
            return await asyncio.to_thread(read)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"reading s3://{self.bucket}/{key}", self._hint) from None

    async def probe(self, prefix: str) -> int:
        """List at most one key under ``prefix``: the harmless request ``check`` makes."""
        resp = await _call(
            f"listing s3://{self.bucket}/{prefix}",
            self._hint,
            self.client.list_objects_v2,
            Bucket=self.bucket,
            Prefix=prefix,
            MaxKeys=1,
        )
        return int(resp.get("KeyCount", 0))


@dataclass(frozen=True)
class SqsMessage:
    receipt: str
    body: str


class SqsQueue:
    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.url = url
        self._hint = "the key needs sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes"

    async def receive(self, wait_secs: int, visibility_secs: int) -> list[SqsMessage]:
        resp = await _call(
            f"receiving from {self.url}",
            self._hint,
            self.client.receive_message,
            QueueUrl=self.url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_secs,
            VisibilityTimeout=visibility_secs,
        )
        return [SqsMessage(str(m["ReceiptHandle"]), str(m.get("Body", ""))) for m in resp.get("Messages", ())]

    async def delete(self, receipt: str) -> None:
        await _call(
            f"deleting a message from {self.url}",
            self._hint,
            self.client.delete_message,
            QueueUrl=self.url,
            ReceiptHandle=receipt,
        )

    async def probe(self) -> int:
        resp = await _call(
            f"reading attributes of {self.url}",
            self._hint,
            self.client.get_queue_attributes,
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages"],
        )
        return int(resp.get("Attributes", {}).get("ApproximateNumberOfMessages", 0))
