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
  on early VGG maps, degradation parameters as learned "text" embeddings).

NOTES (state of issue 14)
-------------------------
Exists: the sampler, the losses, both adaptor variants and their tests (``tests/test_deplsr.py``).

Remains:

- ``nets.py``: RealDAT (DAT: embed 180, 6 residual groups of 6 blocks, 6 heads, split [8, 32],
  expansion 4) with a FusionBlock before each residual group (content + fine-degradation tokens
  through Linear-ReLU-Linear-ReLU to 180, cross-attention prior -> image, (content, degradation)
  pairs concatenated, image attends to them, MLP), and a lighter body for the shipped checkpoint;
  FusionBlock shape/gradient tests.
- ``method.py`` + catalogue lines; recipes ``deplsr-adaptor`` and ``deplsr`` in ``bench/train/``
  (``cpu`` presets under an hour, ``gpu`` presets at the paper's scale; captions from
  ``train/coco`` and ``train/celeba_mm`` ``captions.jsonl`` for the CLIP variant's content term;
  ``realesrgan-x4`` LR on the fly; resume-equality tests).
- the shipped checkpoint (fp16 safetensors within 20 MB, labelled as the lighter body).
- the adaptor measurement: rank correlation of the fine embeddings with ``targets()`` on held-out
  images; the ablation "without degradation tokens".
- the must-show runs (RealSR-Canon x4, Set5/Set14/Urban100 and ACDC with ``realesrgan-x4``;
  PSNR-Y/SSIM-Y with both shaves, LPIPS, DISTS; DePLSR, ablation, ``realesrgan-x4plus``, bicubic,
  SFD-SR) in one report.

SR networks (``nets.py``, tests ``tests/test_deplsr_nets.py``): ``FusionBlock`` (prior MLPs, prior
tokens attend to the image, (content, fine_i) pairs concatenated on channels, the image attends to
the 5 pairs, MLP; zero-initialised image-side output layers, so an untrained block is the
identity), ``RealDAT`` (wraps a spandrel DAT: a FusionBlock before each residual group;
19,045,371 parameters at the paper's x4 config vs the paper's 18.06 M, the gap in FusionBlock
widths the facts do not give, see ``nets.py``) and ``FusedRRDN`` (the lighter body that ships:
FusionBlocks before each RRDB of esrgan-thick-x4, base frozen outside the module tree or trained
with ``train_base``; 1.33 M fusion parameters, 8.59 M with the base: 2.7 / 17.2 MB in fp16).
``tokens="zero"`` on either network is the ablation "without the degradation tokens" (fine
embeddings zeroed, content kept). The ``nets.py`` item of "Remains" is done.

Adaptor training (``bench/train/deplsr.py``, recipe ``deplsr-adaptor``, tests
``tests/test_deplsr_train.py``) exists: its ``cpu`` preset (400 steps x 8, VGG16 variant) took
1160 s on one core and its Kodak24 degradation probe gave Spearman rho blur 0.947, noise 0.956,
JPEG 0.892 (48 LQ images). Next: move ``build_adaptor`` here and register the arch in
``sr_methods.trained.ARCHS`` (sr_methods must not import bench); a loop hook for a recipe's own
validation that sees ``--data-root``; captions for the CLIP variant; then the ``deplsr`` SR
recipe, ``method.py``, catalogue lines, the shipped checkpoint, the ablation and the must-show runs.
"""
