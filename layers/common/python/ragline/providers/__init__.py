"""What the model providers of ``llm/``, ``embeddings/`` and ``rerankers/`` share: SDK
clients and retries.

It sits below those packages so none imports another. Nothing is imported here:
the SDKs load only inside :mod:`ragline.providers.clients`, when a provider is built.
"""
