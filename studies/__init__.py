"""Studies: one file per claim group (THEORY.md §11).

Each module has a docstring naming the theorem and the paper, a frozen
``Config`` with ``quick()`` (seconds; used by the tests and ``verify --quick``)
and the default paper-scale configuration, ``run(cfg) -> tidy DataFrame``,
``check(df) -> list[ClaimResult]`` and ``plot(df) -> Figure``.
"""

# The explicit registry: study name -> module (imported on demand).
STUDIES: dict[str, str] = {
    "rb_contraction": "mdptheory.studies.rb_contraction",
    "rb_bias": "mdptheory.studies.rb_bias",
    "la_averaging": "mdptheory.studies.la_averaging",
    "la_theorem2": "mdptheory.studies.la_theorem2",
    "mv_munchausen": "mdptheory.studies.mv_munchausen",
    "ts_tsallis": "mdptheory.studies.ts_tsallis",
    "mv_robustness": "mdptheory.studies.mv_robustness",
    "ts_greedy": "mdptheory.studies.ts_greedy",
    "np_equilibrium": "mdptheory.studies.np_equilibrium",
    "cf_posterior": "mdptheory.studies.cf_posterior",
    "cf_bon": "mdptheory.studies.cf_bon",
    "cf_asymptotics": "mdptheory.studies.cf_asymptotics",
    "cf_overopt": "mdptheory.studies.cf_overopt",
    "la_identities": "mdptheory.studies.la_identities",
    "la_noise": "mdptheory.studies.la_noise",
    "np_rates": "mdptheory.studies.np_rates",
    "np_baselines": "mdptheory.studies.np_baselines",
    "dr_bc": "mdptheory.studies.dr_bc",
    "dr_decomposition": "mdptheory.studies.dr_decomposition",
    "dr_exploration": "mdptheory.studies.dr_exploration",
    "dr_rlhf": "mdptheory.studies.dr_rlhf",
    "lm_mdvi": "mdptheory.studies.lm_mdvi",
    "lm_nash": "mdptheory.studies.lm_nash",
    "lm_bon": "mdptheory.studies.lm_bon",
    "lm_demonstrations": "mdptheory.studies.lm_demonstrations",
}
