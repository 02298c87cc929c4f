"""IODA (one-shot domain adaptation for SR, NeurIPS 2024): adapt a trained SR network to a target
domain from one target LR image, guided by a frozen image encoder.

- `losses`: the image-guided directional loss on encoder embeddings;
- `masks`: instance masks (SLIC, Felzenszwalb, grid, box instead of SAM) and occlusion masks;
- `encoder`: the masked embedding ``E(x, m)`` (masked pooling instead of Alpha-CLIP's alpha);
- `method`: `IODAMethod` (an `sr_methods.adapt.AdaptiveMethod`) and its catalogue factory;
- `catalogue`: the catalogue line ``ioda`` (options: ``base`` and the adaptation settings).

Importing this package imports nothing heavy.
"""
