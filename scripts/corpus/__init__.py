"""Corpus builder (the package behind scripts/build_corpus.py): `common` holds the shared
file, ONNX Runtime and meta/index helpers, `light` the nine model-zoo image classifiers,
`minilm` the MiniLM sentence encoder."""
