# Where jobs run, chosen in one place: every step takes --cmd "$train_cmd" (or
# "$cuda_cmd" for GPU work) and calls it the Kaldi way, e.g.
#   $train_cmd JOB=1:$nj $dir/log/extract.JOB.log <command with JOB>
# Runners (utils/):
#   run.pl    this machine; --max-jobs-run N limits parallel jobs (default: #CPUs, #GPUs with --gpu)
#   slurm.pl  a Slurm cluster; conf/slurm.conf maps --mem/--num-threads/--gpu/--time to sbatch
#   queue.pl  a Grid Engine cluster; conf/queue.conf maps them to qsub
# Pick one here, or set SID_RUNNER in the environment (e.g. SID_RUNNER=slurm.pl ./run.sh).
runner=${SID_RUNNER:-run.pl}
export train_cmd="$runner --mem 4G"
export cuda_cmd="$runner --mem 8G --gpu 1"
