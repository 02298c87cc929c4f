"""SFD-SR (Dong et al., CVPR 2025): perceptual SR trained as a GAN against semantic feature
discriminators (`iqa.sfd.SFD`).

- `nets`: the generators: the paper's RRDBNet (ESRGAN/KAIR layout, x2..x16) and, for fine-tuning
  the catalogue's ``esrgan-thick`` networks, an RRDN built from its config;
- `losses`: pixel L1, the VGG perceptual loss, and the two adversarial halves (thin wrappers over
  ``SFD.d_loss`` / ``SFD.g_loss``).

The training recipe (data, schedule, presets) is ``bench.train.sfd_sr``; a trained checkpoint runs
as ``sfd-sr-vgg16:PATH`` (`sr_methods.trained`). Importing this package imports nothing heavy.
"""
