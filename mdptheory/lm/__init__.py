"""The LM policy bridge: a small transformer as the policy on an enumerable token MDP (DESIGN.md §5).

* :mod:`mdptheory.lm.tree` — the token MDP as a prefix tree, in pure ``jax.numpy``: sequence laws, soft
  values and the exact KL-regularized optimum by backward induction, regularized policy evaluation, the
  exact best-of-N law, closed-form Nash Mirror-Prox steps, and the conversion to a tabular ``MDP``.
* :mod:`mdptheory.lm.model` — a tiny Equinox transformer (nanoGPT layout, explicit parameter dtype) and an
  order-2 Markov source with a known law for the reference LM.
* :mod:`mdptheory.lm.fit` — exact-objective optax train loops under ``lax.scan`` (chunked, vmappable), and
  the reference LM trained from scratch on the Markov source (:func:`reference_lm`).

The studies ``lm_mdvi``, ``lm_nash``, ``lm_bon`` and ``lm_demonstrations`` (``studies/``) use them to re-check
the tabular claims (LA, MV, NP, CF, DR) with the transformer as the function approximator; every
measurement is exact and done in float64 while the model trains in float32 (LM_BRIDGE.md).
"""

from mdptheory.lm import fit, model, tree
from mdptheory.lm.fit import ReferenceLM, reference_lm

__all__ = ["ReferenceLM", "fit", "model", "reference_lm", "tree"]
