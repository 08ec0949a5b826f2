"""Models as files: the protocol a model file follows and its loader (:mod:`.protocol`), and the
lecture's MLP as one such model (:mod:`.lecture`). Checking (:mod:`jaxninja.gradcheck`) reads
models from here, and so can training."""
