"""Speaker-verification back-ends with Kaldi's numerics and file formats.

``kaldi_io``  Kaldi tables (vectors, int32), single objects, rx/wx filenames.
``lda``       ivector-compute-lda: within-class-normalised LDA with an offset column.
``plda``      Kaldi's two-covariance PLDA: EM training, smoothing, I/O, log-likelihood ratios.
``scoring``   vectorised cosine and PLDA scoring of trial lists, S-norm / AS-norm.
``pipeline``  the recipe's mean -> LDA -> length-norm -> PLDA chain in one process.
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


def big_blas():
    """A context in which BLAS may use the idle cores, for large products (``SID_BLAS_THREADS`` overrides).

    Only products over 10^5 rows go here (scatter matrices, transforms of whole
    tables). On an idle 2-core machine 2 threads run a 200k x 512 SYRK 1.7x
    faster than 1, but with the other core busy they run 2x slower than 1 (the
    threads wait for each other at every step), so the count is the number of
    cores minus the 1-minute load average, at least 1.
    """
    from threadpoolctl import threadpool_limits

    threads = int(os.environ.get("SID_BLAS_THREADS", "0"))
    if threads <= 0:
        cores = os.cpu_count() or 1
        threads = max(1, min(cores, round(cores - os.getloadavg()[0])))
    return threadpool_limits(threads, user_api="blas")
