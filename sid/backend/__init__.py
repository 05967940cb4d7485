"""Speaker-verification back-ends with Kaldi's numerics and file formats.

``kaldi_io``  Kaldi tables (vectors, int32), single objects, rx/wx filenames.
``lda``       ivector-compute-lda: within-class-normalised LDA with an offset column.
``plda``      Kaldi's two-covariance PLDA: EM training, smoothing, I/O, log-likelihood ratios.
``scoring``   vectorised cosine and PLDA scoring of trial lists, S-norm / AS-norm.
"""
