# Where jobs run (see the root cmd.sh): this small recipe runs on the local machine.
export train_cmd="run.pl"
export cuda_cmd="run.pl"
