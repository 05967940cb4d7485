"""Job runners with Kaldi's calling convention: ``run.pl``, ``slurm.pl``, ``queue.pl``.

Every step takes ``--cmd "$train_cmd"`` and calls::

    $cmd [--max-jobs-run N] [--mem 4G] [--num-threads N] [--gpu N] [--time T] \\
         [JOB=1:N] exp/log/name.JOB.log command args-with-JOB...

``JOB`` (any name: ``SPLIT=1:4``) is replaced by the job's number in the log
name and the command. Command words without whitespace are passed unquoted, so
``\\|`` makes a pipe; words with whitespace are quoted. Each job writes one log::

    # <command>
    # Started at <date>
    # Running on <host>                     (cluster jobs)
    #
    <the command's stdout and stderr>
    # Accounting: time=<s> threads=<n>
    # Ended (code <n>) at <date>, elapsed time <s> seconds

All jobs run to the end; then the runner exits 1 and prints, for each failed
job, ``<runner>: job <n> failed (...), log is in <log>``.

Modules: ``common`` (argument parsing, quoting, logged execution, reporting),
``local`` (run.pl), ``cluster`` (slurm.pl, queue.pl: Kaldi-format config files,
array submission, waiting), ``task`` (what a cluster job runs on the node).
"""
