"""moto in server mode as the local S3 + SQS endpoint, provisioned as the CDK stack is.

The bucket notifies the ingest queue of every created and removed object, and the
queue sends messages received ``max_receive_count`` times to a dead-letter queue, so
any S3 client pointed at the endpoint triggers ingestion as it would on AWS.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from ragline.dev.context import REGION

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import QueueConfigurationTypeDef
    from mypy_boto3_sqs import SQSClient

# moto accepts any credentials; these keep boto3 from looking for real ones.
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class PortInUseError(OSError):
    """The port asked for is taken."""


def ensure_port_free(host: str, port: int, option: str) -> None:
    """Raise a readable error if ``host:port`` cannot be bound (port 0 always can)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # The same option the servers set, so a port in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"{host}:{port} is in use; choose another port with {option} (0 = any free)"
                ) from exc
            raise


def client(service: str, endpoint_url: str) -> Any:
    """A boto3 client for the local endpoint with fake credentials."""
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint_url,
        region_name=REGION,
        config=Config(retries={"max_attempts": 2, "mode": "standard"}),
        **FAKE_CREDENTIALS,
    )


class MotoEndpoint:
    """One moto server on a loopback port, serving every service on the same URL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4566) -> None:
        from moto.server import ThreadedMotoServer

        ensure_port_free(host, port, "--aws-port")
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._started = False

    def start(self) -> str:
        """Start serving in a daemon thread and return the endpoint URL."""
        # werkzeug logs every request at INFO; the poller's long polls would flood the console.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server.start()
        self._started = True
        return self.url

    @property
    def url(self) -> str:
        """``http://host:port`` with the port actually bound."""
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop serving; moto's state (objects, messages) is lost."""
        if self._started:
            self._server.stop()
            self._started = False


@dataclass(frozen=True)
class Resources:
    """What :func:`provision` created."""

    bucket: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str


def queue_arn(sqs: SQSClient, queue_url: str) -> str:
    """The ARN of a queue, from its attributes."""
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]


def provision(
    endpoint_url: str,
    *,
    bucket: str,
    queue_name: str,
    dlq_name: str,
    max_receive_count: int = 3,
    visibility_timeout: int = 5,
) -> Resources:
    """Create the bucket, the queue with its DLQ, and the bucket's notification to the queue."""
    s3: S3Client = client("s3", endpoint_url)
    sqs: SQSClient = client("sqs", endpoint_url)

    s3.create_bucket(Bucket=bucket)
    dlq_url = sqs.create_queue(
        QueueName=dlq_name, Attributes={"MessageRetentionPeriod": str(14 * 24 * 3600)}
    )["QueueUrl"]
    dlq = queue_arn(sqs, dlq_url)
    redrive = {"deadLetterTargetArn": dlq, "maxReceiveCount": str(max_receive_count)}
    ingest_url = sqs.create_queue(
        QueueName=queue_name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(redrive),
        },
    )["QueueUrl"]
    ingest = queue_arn(sqs, ingest_url)
    notification: QueueConfigurationTypeDef = {
        "Id": "ragline-ingest",
        "QueueArn": ingest,
        "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
    }
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [notification]}
    )
    return Resources(
        bucket=bucket, queue_url=ingest_url, queue_arn=ingest, dlq_url=dlq_url, dlq_arn=dlq
    )
