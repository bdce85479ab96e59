"""The documents bucket the S3-facing tests use."""

BUCKET = "ragline-documents"
