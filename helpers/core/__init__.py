"""The numpy core both tracks share: attribution math, quality measures, statistics, sanity checks.

Nothing under ``helpers.core`` imports PyTorch or TensorFlow. ``helpers.torch`` and
``helpers.keras`` are thin adapters: they run the model (gradients, forward passes) and call these
functions for every rule that does not depend on the framework.

* :mod:`~helpers.core.attribution`: targets, baselines, quadrature rules and the path integral of
  Integrated Gradients, "did you mean" layer names.
* :mod:`~helpers.core.filters`: the Gaussian kernel (and a numpy blur) every blur uses.
* :mod:`~helpers.core.maps`: channel reduction and statistics of explanation maps.
* :mod:`~helpers.core.similarity`: Spearman rank correlation and SSIM between maps.
* :mod:`~helpers.core.quality`: deletion/insertion curves and reference maps.
* :mod:`~helpers.core.stats`: accuracy, confusion matrix, per-class accuracy, standard errors.
* :mod:`~helpers.core.intervals`: bootstrap and paired intervals, and the one rule (with its
  Spanish sentence) that reads a difference as a result only when its interval allows it.
* :mod:`~helpers.core.timing`: warm-up plus the median of repeated timings.
* :mod:`~helpers.core.spanish`: numbers as the notebooks print them ("74,9 %", "0,12 [0,05; 0,20]").
* :mod:`~helpers.core.sanity`: the model-randomization cascade and its scoring.
"""
