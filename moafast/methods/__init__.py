"""Training and inference loops of the published multi-objective alignment methods, built on moafast's ops.

* :mod:`moafast.methods.mah_dpo`: MAH-DPO (multi-head DPO, one head per objective, mixable at inference).
* :mod:`moafast.methods.ham`: HaM (K policy heads maximising the hypervolume of their objective scores).
"""
