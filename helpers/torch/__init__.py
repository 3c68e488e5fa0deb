"""PyTorch track (CIFAR-10): models, training, explainers, quality metrics, sanity check.

Lessons ``01_cifar10_modelo.ipynb`` to ``07_comparativa.ipynb``. Every module here imports torch;
none imports TensorFlow or Keras.
"""
