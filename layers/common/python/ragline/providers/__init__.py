"""What the model providers of ``llm/`` and ``embeddings/`` share: SDK clients and retries.

It sits below both packages so neither imports the other. Nothing is imported here:
the SDKs load only inside :mod:`ragline.providers.clients`, when a provider is built.
"""
