"""Speaker-verification back-ends with Kaldi's numerics and file formats
(read and written through ``sid.kaldi_io``).

``lda``       ivector-compute-lda: within-class-normalised LDA with an offset column.
``plda``      Kaldi's two-covariance PLDA: EM training, smoothing, I/O, log-likelihood ratios.
``scoring``   vectorised cosine and PLDA scoring of trial lists, S-norm / AS-norm.
``pipeline``  the recipe's mean -> LDA -> length-norm -> PLDA chain in one process.
"""

import math
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
    tables). On a 2-core machine 2 threads ran a 200k x 512 SYRK 1.7x faster
    than 1 at a load average of 1.0, but 2x slower at 1.5 (the threads wait for
    each other at every step), so a core counts as free while the 1-minute load
    average leaves at least 0.2 of it idle.
    """
    from threadpoolctl import threadpool_limits

    threads = int(os.environ.get("SID_BLAS_THREADS", "0"))
    if threads <= 0:
        cores = os.cpu_count() or 1
        threads = max(1, min(cores, math.floor(cores - os.getloadavg()[0] + 0.8)))
    return threadpool_limits(threads, user_api="blas")
