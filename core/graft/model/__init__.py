"""The model: the builder that composes an extractor delegate and heads, weights by layer name, where
starting weights come from, losses, optimizers, learning-rate scales and callbacks as Keras builds them."""
