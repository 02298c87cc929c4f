"""CDASR (Multimedia Systems 2025): a CLIP/VGG16-embedding-conditioned domain-adaptive module in a frozen
RRDN, meta-trained so that a few target LR images adapt it (nets, losses, method, catalogue)."""
