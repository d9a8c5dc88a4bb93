"""The pocket model: a small text-to-image latent diffusion model trained on procedural scenes.

- ``scenes``: the seeded scene generator (images, captions, ground-truth masks and attributes);
- ``model``: the architecture (plain diffusers/transformers parts) and ``load_pocket()``;
- ``train``: the training command that reproduces the shipped weights;
- ``metrics``: image analysis that reads attributes back from generated images (for the evaluation).
"""
