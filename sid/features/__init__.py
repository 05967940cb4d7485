"""Kaldi-exact acoustic features: framing, fbank, MFCC, energy VAD, sliding CMN.

Modules: ``options`` (Kaldi's option structs and names), ``window`` (framing),
``mel`` (filterbank/DCT/lifter), ``compute`` (``Fbank``, ``Mfcc``), ``vad``
(``compute_vad``, ``select_voiced_frames``), ``cmvn`` (``apply_cmvn_sliding``),
``io`` (Kaldi table writers/readers), ``extract`` (the compute_*_feats driver).
"""
