"""CLIP-SR (text-guided SR, IEEE TMM; built on GALIP): a generator conditioned on a caption's
sentence embedding.

- `nets`: the generator and its prompt predictor;
- `text`: the frozen sentence encoders (all-MiniLM-L6-v2 offline, or an open_clip text tower) and
  the assets ``minilm-l6-v2`` and ``minilm-l6-v2-tokenizer``.

Importing this package imports nothing.
"""
