"""Upload a document to a running `ragline dev` with boto3, then ask about it over HTTP.

ragline dev &                      # in another terminal
python examples/upload_and_ask.py examples/docs/tours.txt "How much does the Lighthouse Tour cost?"
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

import boto3

path, question = Path(sys.argv[1]), sys.argv[2]
data_dir = Path(os.environ.get("RAGLINE_DATA_DIR", ".ragline"))  # as `ragline dev --data-dir`
endpoints = json.loads((data_dir / "endpoints.json").read_text())  # written once ready
s3 = boto3.client(
    "s3",
    endpoint_url=endpoints["s3"],
    region_name="us-east-1",
    aws_access_key_id="testing",  # the local endpoint accepts any credentials
    aws_secret_access_key="testing",
)
s3.upload_file(str(path), endpoints["bucket"], path.name)
source = f"s3://{endpoints['bucket']}/{path.name}"

deadline = time.monotonic() + 30  # ingestion runs S3 -> SQS -> ingest handler, in the background
while True:
    request = urllib.request.Request(
        f"{endpoints['api']}/query",
        data=json.dumps({"question": question}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        answer = json.load(response)
    if any(c["source"] == source for c in answer["citations"]) or time.monotonic() > deadline:
        break
    time.sleep(0.5)

print(answer["answer"])
for citation in answer["citations"]:
    print(f"  [{citation['n']}] {citation['source']} ({citation['title']})")
print(f"  cost ${answer['usage']['cost_usd']}, {answer['latency_ms']['total']:.0f} ms")
