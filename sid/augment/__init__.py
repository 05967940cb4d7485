"""Data augmentation recorded per utterance and applied in-process (Kaldi egs/voxceleb/v2 stages 2-3).

``sid.augment.datadir`` makes augmented copies of a data dir (reverberation with
RIRs, MUSAN noise/music/babble at an SNR, speed perturbation) whose ``utt2aug``
holds each utterance's recipe; ``apply_recipe`` applies one recipe to the clean
samples when features are computed.
"""

from sid.augment.datadir import augment_data_dir, perturb_data_dir_speed, reverberate_data_dir
from sid.augment.recipe import apply_recipe, parse_recipe

__all__ = ["apply_recipe", "parse_recipe", "augment_data_dir", "reverberate_data_dir", "perturb_data_dir_speed"]
