"""Analyses on a model's features and recordings: scores, encoding models, geometry, organization, skills."""
