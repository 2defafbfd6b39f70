"""Training on ``tf.distribute``: the strategy a spec asks for, the cluster of workers, the repairs Keras 3
needs there, and local worker processes."""
