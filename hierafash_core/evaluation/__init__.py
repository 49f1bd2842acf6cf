"""``hierafash evaluate``: the paper's comparison measured on the mini designer (docs/mini-designer.md).

- :mod:`.cases`: held-out designs of the synthetic test split, one attribute edit each.
- :mod:`.classifier`: the attribute classifier that judges images.
- :mod:`.metrics`: PSNR/SSIM outside a mask, hit rates, palette adherence, diversity.
- :mod:`.run`: :func:`~.run.evaluate` (drafts staged and flat; eight edit methods).
- :mod:`.report`, :mod:`.sheet`: the tables and the contact sheet.
"""
