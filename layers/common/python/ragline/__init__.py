"""ragline: serverless retrieval-augmented generation on AWS.

The shared library behind the Lambda handlers: configuration, document parsing and
chunking, the PostgreSQL + pgvector store, embeddings, language models, prompts,
telemetry, and the two use cases (``ingest`` and ``answer``).
"""

__version__ = "0.1.0"
