"""IODA (one-shot domain adaptation for SR, NeurIPS 2024): adapt a trained SR network to a target
domain from one target LR image, guided by a frozen image encoder.

- `losses`: the image-guided directional loss on encoder embeddings, written from the official
  code's definition (issue 13), without its known bugs (see the module).

Work in progress (issue 13): the masked encoder pooling, the instance/occlusion masks, the
adaptation loop and the harness protocol are not here yet. Importing this package imports
nothing heavy.
"""
