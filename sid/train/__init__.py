"""Training of speaker-embedding networks: on-the-fly chunk sampling from Kaldi
feature archives (``data``), SpecAugment (``specaug``), the resumable training loop
(``trainer``), checkpoints and model averaging (``checkpoint``), learning-rate
schedules (``schedule``) and validation (``validate``)."""
