"""Speaker-verification back-ends with Kaldi's numerics and file formats.

``kaldi_io``  Kaldi tables (vectors, int32), single objects, rx/wx filenames.
``lda``       ivector-compute-lda: within-class-normalised LDA with an offset column.
``plda``      Kaldi's two-covariance PLDA: EM training, smoothing, I/O, log-likelihood ratios.
``scoring``   vectorised cosine and PLDA scoring of trial lists, S-norm / AS-norm.
"""

import os


def limit_blas_threads() -> None:
    """Run BLAS single-threaded (``SID_BLAS_THREADS`` overrides), as Kaldi's binaries do.

    Back-end tools run as pipelines of several processes, usually beside other
    jobs; OpenBLAS's spinning worker threads then multiply CPU time (4x for PLDA
    training on a busy 2-core machine) for no gain in wall time.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(int(os.environ.get("SID_BLAS_THREADS", "1")), user_api="blas")
