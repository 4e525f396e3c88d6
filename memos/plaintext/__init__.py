"""The plaintext tier: ingest, writer, embedder, dense (FAISS) and keyword (BM25)
indexes, filters, retrieval and prompt assembly."""
