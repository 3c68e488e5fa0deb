"""Keras / TensorFlow track (Flowers102): tf.data pipeline, augmentation, models, training,
explainers, quality metrics, sanity check and perturbations.

Lessons ``10_flowers102_datos_y_pipeline.ipynb`` to ``15_analisis_de_errores_y_reflexion.ipynb``.
No module here imports torch (Albumentations is imported without its PyTorch extras).
"""
