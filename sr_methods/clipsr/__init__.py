"""CLIP-SR (text-guided SR, IEEE TMM; built on GALIP): a generator conditioned on a caption's
sentence embedding.

- `nets`: the generator (DFBLK, G_Blocks, the prompt predictor), the discriminator, the network of a
  ``clip-sr`` checkpoint (`CLIPSRNet`, sentence encoder + generator);
- `losses`: hinge, MA-GP, the generator's adversarial + text-image term, the aligner's loss;
- `image`: the discriminator's frozen features (CLIP blocks or VGG16) and the VGG16 -> sentence
  aligner (``clip-sr-align``);
- `text`: the frozen sentence encoders (all-MiniLM-L6-v2 offline, or an open_clip text tower) and
  the assets ``minilm-l6-v2`` and ``minilm-l6-v2-tokenizer``;
- `catalogue`: the shipped checkpoints and families.

Importing this package imports nothing.
"""
