"""Classic collaborative filtering: Pop, ItemKNN, UserKNN, BiasedMF, EASE^R and iALS.

Every model here subclasses ScoringRecommender: it scores the whole catalogue for a batch of users with
vectorised numpy/scipy, and the base class masks seen items and takes the top k.
"""
