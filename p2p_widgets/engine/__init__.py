"""The engine: prompts -> mapper -> schedule -> rules -> processors -> sampler (see README, Architecture)."""
