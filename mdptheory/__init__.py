"""mdptheory: theorems about regularized reinforcement learning, run as code."""
