"""DePLSR (Scientific Reports 2025; official code XuBao12/DePLSR, no weights published):
degradation priors from a vision-language model for real-world SR.

Modules (nothing heavy is imported here):

- ``degradations``: the adaptor's degradation sampler, ``degrade(hr, generator) -> (lq, params)``;
  ``params.texts()`` (5 fine texts: blur, noise, jpeg, resize, ringing), ``full_text()``,
  ``vectors()`` (the parametric "text") and ``targets()`` (blur sigma, noise level, JPEG quality).
  Two stages, the second continuing from the first (the official code's restart bug fixed).
- ``losses``: ``siglip_loss`` (open_clip's ``SigLipLoss`` reduction) and ``adaptor_loss``
  (0.2 content + 0.3 degradation + 0.5 mean of the 5 fine terms).
- ``adaptor``: the degradation adaptor, ``ClipDegradationAdaptor`` (frozen open_clip ViT + a
  trainable copy with zero-initialised per-block controls, DA-CLIP style) and the offline
  ``VGGDegradationAdaptor`` (``deplsr-vgg16-param``: frozen VGG16 content, a light trainable head
  on early VGG maps, degradation parameters as learned "text" embeddings); ``build_adaptor``
  (checkpoint arch ``deplsr-adaptor``).
- ``nets``: ``FusionBlock`` (prior MLPs, prior tokens attend to the image, (content, fine_i)
  pairs concatenated on channels, the image attends to the 5 pairs, MLP; zero-initialised
  image-side output layers, so an untrained block is the identity), ``RealDAT`` (the paper's: a
  spandrel DAT with a FusionBlock before each residual group; 19,045,371 parameters at x4 vs the
  paper's 18.06 M, the gap in FusionBlock widths the facts do not give), ``FusedRRDN`` (the lighter
  body that ships: FusionBlocks before each RRDB of the frozen ``esrgan-thick-x4``, 1.33 M
  parameters), ``DePLSRNet`` (adaptor + body, checkpoint arch ``deplsr``). ``tokens="zero"`` is
  the ablation "without the degradation tokens" (fine embeddings zeroed, content kept).
- ``catalogue``: ``deplsr-rrdn-vgg16-param-x4`` and its ablation
  ``deplsr-rrdn-vgg16-param-notokens-x4`` (shipped in ``sr_methods/data``).

Training: ``srbench train deplsr-adaptor`` then ``srbench train deplsr`` (``bench/train/deplsr.py``
documents both recipes, their presets and measured times). Tests: ``tests/test_deplsr.py``
(sampler, losses, adaptors), ``tests/test_deplsr_nets.py`` (FusionBlock, RealDAT, FusedRRDN),
``tests/test_deplsr_train.py`` (adaptor recipe, captions, probe), ``tests/test_deplsr_sr.py`` (SR
recipe, resume, the checkpoint as a method).
"""
