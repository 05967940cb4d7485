# Where jobs run, chosen in one place. Every step takes --cmd "$train_cmd" etc.
#   run.pl    this machine (--max-jobs-run N limits parallel jobs)
#   slurm.pl  a Slurm cluster (conf/slurm.conf maps --mem/--gpu/--num-threads/--time)
#   queue.pl  an SGE cluster (conf/queue.conf)
# e.g. export train_cmd="slurm.pl --mem 4G"; export cuda_cmd="slurm.pl --gpu 1"
export train_cmd="run.pl"
export cuda_cmd="run.pl"
