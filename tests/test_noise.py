"""Error models for ε_k: the statistics each model promises, on both kernel layouts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mdptheory import envs, noise, operators as ops
from mdptheory.errors import ParameterError, ShapeError, NonFiniteError

N = 20_000  # draws; standard errors below are computed from it


@pytest.fixture(scope="module")
def garnets():
  dense = envs.make("garnet", key=3, num_states=8, num_actions=3, branching=3)
  return dense, envs.make("garnet", key=3, num_states=8, num_actions=3, branching=3, sparse=True)


def _draws(model, mdp, v, n=N, k=0):
  keys = jax.random.split(jax.random.key(0), n)
  return np.asarray(jax.jit(jax.vmap(lambda key: model(key, k, mdp, v)))(keys))


@pytest.mark.parametrize("layout", [0, 1])
def test_generative_sampling_is_an_unbiased_bounded_martingale_difference(garnets, layout):
  """N1: E ε = 0 (within 5 standard errors) and |ε| <= γ span(v) for every draw."""
  mdp = garnets[layout]
  v = jnp.linspace(-2.0, 3.0, 8)
  eps = _draws(noise.generative(), mdp, v)
  se = eps.std(0) / np.sqrt(N)
  assert np.all(np.abs(eps.mean(0)) <= 5 * se + 1e-12)
  assert np.abs(eps).max() <= float(mdp.gamma) * float(ops.span(v)) + 1e-12


def test_generative_sampling_draws_next_states_with_the_kernel_probabilities(garnets):
  mdp = garnets[0]
  keys = jax.random.split(jax.random.key(1), N)
  s_next = np.asarray(jax.vmap(lambda k: noise.sample_next_states(k, mdp))(keys))  # [N, S, A]
  freq = (s_next[..., None] == np.arange(8)).mean(0)  # [S, A, S]
  P = np.asarray(mdp.P)
  se = np.sqrt(P * (1 - P) / N)
  assert np.all(np.abs(freq - P) <= 5 * se + 1e-12)


def test_gaussian_biased_and_alternating_have_their_moments(garnets):
  mdp, v = garnets[0], jnp.zeros(8)
  g = _draws(noise.gaussian(0.5), mdp, v)
  assert abs(g.mean()) < 5 * 0.5 / np.sqrt(g.size) and abs(g.std() - 0.5) < 0.01
  b = _draws(noise.biased(0.3, 0.1), mdp, v)
  assert abs(b.mean() - 0.3) < 5 * 0.1 / np.sqrt(b.size)
  alt = noise.alternating(0.7)
  assert float(alt(None, 0, mdp, v)[0, 0]) == 0.7 and float(alt(None, 1, mdp, v)[0, 0]) == -0.7
  assert abs(float(jnp.mean(jnp.stack([alt(None, k, mdp, v) for k in range(10)])))) < 1e-15


def test_heavy_tailed_models_have_heavy_tails(garnets):
  mdp, v = garnets[0], jnp.zeros(8)
  t = _draws(noise.student_t(2.5), mdp, v).ravel()
  g = _draws(noise.gaussian(1.0), mdp, v).ravel()
  assert np.mean(np.abs(t) > 4) > 20 * max(np.mean(np.abs(g) > 4), 1e-6)
  s = _draws(noise.spikes(0.02, 10.0), mdp, v)
  assert abs(np.mean(s != 0) - 0.02) < 5 * np.sqrt(0.02 * 0.98 / s.size)
  assert set(np.unique(s)) <= {-10.0, 0.0, 10.0}


def test_a_user_sequence_is_replayed_in_order(garnets):
  mdp = garnets[0]
  eps = np.random.default_rng(0).normal(size=(5, 8, 3))
  model = noise.sequence(eps)
  for k in range(5):
    np.testing.assert_array_equal(model(None, k, mdp, None), eps[k])
  np.testing.assert_array_equal(model(None, 9, mdp, None), eps[4])


def test_bad_noise_parameters_are_refused():
  with pytest.raises(ParameterError, match="sigma"):
    noise.gaussian(-1.0)
  with pytest.raises(ParameterError, match="generative"):
    noise.make("gausian", sigma=1.0)
  with pytest.raises(ShapeError, match=r"\(K, S, A\)"):
    noise.sequence(np.zeros((3, 4)))
  with pytest.raises(NonFiniteError):
    noise.sequence(np.full((2, 3, 2), np.nan))


def test_sampling_never_picks_a_zero_probability_successor():
  """Inversion with u < F_n: trailing and interior zeros are never drawn, even with F_n rounded below 1."""
  from mdptheory.noise import _inverse_cdf
  probs = jnp.asarray([[0.0, 0.3, 0.0, 0.7 - 1e-16, 0.0]] * 4)
  keys = jax.random.split(jax.random.key(5), 50_000)
  idx = np.asarray(jax.vmap(lambda k: _inverse_cdf(k, probs))(keys))
  assert set(np.unique(idx)) == {1, 3}
